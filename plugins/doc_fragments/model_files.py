# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The file arguments of every module that writes a model directory (Ansible's common file arguments, typed as
``add_file_common_args`` types them, plus ``dir_mode``), checked by module_utils ``tree_safety.file_arguments``."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  owner:
    description:
      - Owner (name or uid) of the model directory, its subdirectories, the model's files and the completion marker
        the module writes. Unchanged when not given.
      - Set through file descriptors, never through a path that could cross a symlink (see the notes).
    type: str
  group:
    description:
      - Group (name or gid) of the model directory, its subdirectories, the model's files and the completion marker.
        Unchanged when not given.
      - Set through file descriptors, like O(owner).
    type: str
  mode:
    description:
      - Octal mode of the model's files and the completion marker, for example V('0644'); quote it so that it
        reaches the module as a string. Symbolic modes (V(u=rw,g=r)) are refused.
      - When not given, files already there keep their mode and the marker is written with mode C(0644). Set through
        file descriptors, like O(owner).
    type: raw
  dir_mode:
    description:
      - Octal mode of the model directory and its subdirectories, for example V('0755'). Unchanged when not given.
      - Set through file descriptors, like O(owner).
    type: raw
  seuser:
    description: Not supported (see the notes); a value is refused before anything changes.
    type: str
  serole:
    description: Not supported (see the notes); a value is refused before anything changes.
    type: str
  setype:
    description: Not supported (see the notes); a value is refused before anything changes.
    type: str
  selevel:
    description: Not supported (see the notes); a value is refused before anything changes.
    type: str
  attributes:
    description: Not supported (see the notes); a value is refused before anything changes.
    type: str
    aliases: [attr]
  unsafe_writes:
    description: Has no effect; the model's files are never written in place (they are verified in a private staging
      directory, then renamed into the model directory).
    type: bool
    default: false
notes:
  - "O(owner), O(group) and O(mode) are Ansible's common file arguments (C(add_file_common_args)), but they are not
    applied with C(set_fs_attributes_if_different): Ansible's helper works on path names, so it follows a symlink
    planted in the model directory during the run (a symlinked subdirectory on the way to a file; for modes, a file
    swapped for a link between its C(islink) check and its C(chmod)), and would C(chown) or C(chmod) something
    outside. The module opens every directory below the model directory and every file with C(O_NOFOLLOW) and sets
    owner, group and mode with C(fchown)/C(fchmod) on those descriptors; a link is refused, never followed. SELinux
    contexts (O(seuser), O(serole), O(setype), O(selevel)) and file attributes (O(attributes)) have no such
    descriptor-based path in Ansible's helpers, so a value of any of them is refused before anything changes rather
    than applied through a path or silently ignored."
"""
