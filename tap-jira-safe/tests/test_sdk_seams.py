"""Every private singer-sdk member tap-jira-safe relies on (all in ``sdk_compat``) still
exists with the parameters we pass: an SDK release that moves one fails here, not mid-run."""

import inspect

import pytest
from singer_sdk.streams._state import StreamStateManager

from tap_jira_safe import sdk_compat


@pytest.mark.parametrize("seam", sorted(sdk_compat.SEAMS))
def test_each_seam_exists_with_the_parameters_we_pass(seam: str) -> None:
    owner, member, params = sdk_compat.SEAMS[seam]
    function = getattr(owner, member, None)
    assert callable(function), f"{owner.__name__}.{member} is gone (seam {seam})"
    signature = inspect.signature(function)
    assert tuple(signature.parameters)[1:] == params, f"{member}{signature} changed"


def test_the_state_manager_still_has_is_flushed() -> None:
    """``write_state_now`` clears it so the SDK writes a state no record changed."""
    assert "is_flushed" in inspect.getsource(StreamStateManager.__init__)
