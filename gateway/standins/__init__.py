"""Local stand-ins of the four upstream APIs (see docs/upstreams.md).

They verify authentication the way the real services would, enforce the
documented quotas and answer with the documented success and error shapes.
Their verification code is written from the spec and shares nothing with the
gateway's signing code: they are the independent check of the gateway.
"""
