# -*- coding: utf-8 -*-
# Copyright (c) llmops.deploy developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type for bad sizing input: it names the field, the value and what is accepted."""


class SizingInputError(ValueError):
    """Bad input to the sizing engine. ``str()`` is a complete, user-facing sentence."""

    def __init__(self, field, value, accepted, detail=None):
        self.field = field
        self.value = value
        self.accepted = accepted
        self.detail = detail
        message = "%s: invalid value %r; expected %s" % (field, value, accepted)
        if detail:
            message += " (%s)" % detail
        super(SizingInputError, self).__init__(message)
