"""(soundness checker: filled in below)"""


class VerifyResult:  # placeholder replaced in the same change set
    pass


def verify(*a, **k):
    raise NotImplementedError
