"""OverflowWorkflow: holds work an automation's run could not carry into its next run.

A run continues as new with its state, unread events, queued firings and unsent lifecycle
events, all in one payload that Temporal caps at 2 MB. A backlog bigger than that (tens of
thousands of firings queued in one automation) used to be worked off in the old run, growing
its history toward the server's hard limit, where the newest work had to be dropped. Instead
the run hands the newest part to overflow children, a compressed chunk each, and the next run
pulls them back one at a time, when its own backlog runs low: pull, not push, so a chunk never
lands in the middle of a continue-as-new and a run never holds more than it can work off.

The story of one overflow child:
1. started by the automation's run, with its chunk (ParentClosePolicy.ABANDON: it outlives the
   run that started it);
2. waits for the automation's `release` signal (or, should it never come, RELEASE_ANYWAY_AFTER);
3. signals the chunk back to the automation (`take_back`, to whichever run is current) and ends.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

OVERFLOW_WORKFLOW_TYPE = "AutomationOverflow"
TAKE_BACK_SIGNAL = "take_back"
# An automation pulls its chunks back as its backlog runs low; one that never does (deleted,
# or wedged) must not keep a chunk forever: after this long it is offered back regardless.
RELEASE_ANYWAY_AFTER = timedelta(days=7)


class OverflowChunk(BaseModel):
    """One chunk of work (a CarriedWork, zlib-compressed JSON in base64) and its owner."""

    automation_workflow_id: str
    packed_work: str
    items: int


class ReturnedWork(BaseModel):
    """The `take_back` signal: a chunk, and which overflow child held it."""

    overflow_id: str
    packed_work: str


@workflow.defn(name=OVERFLOW_WORKFLOW_TYPE)
class OverflowWorkflow:
    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self, chunk: OverflowChunk) -> str:
        try:
            await workflow.wait_condition(lambda: self.released, timeout=RELEASE_ANYWAY_AFTER)
        except TimeoutError:
            workflow.logger.warning(
                "%s never pulled its overflow back; offering it now", chunk.automation_workflow_id
            )
        owner = workflow.get_external_workflow_handle(chunk.automation_workflow_id)
        try:
            returned = ReturnedWork(
                overflow_id=workflow.info().workflow_id, packed_work=chunk.packed_work
            )
            await owner.signal(TAKE_BACK_SIGNAL, returned)
        except Exception as error:  # the automation is gone: so is the point of its work
            return f"{chunk.items} items not taken back: {error}"
        return f"{chunk.items} items taken back"

    @workflow.signal
    def release(self) -> None:
        self.released = True
