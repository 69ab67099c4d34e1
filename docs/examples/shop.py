"""The worked example of docs/runs.md: an order run through three steps, one flaky, one with a child run.

    statewright run shop.py:program --store shop.db --run-id order-7

``reserve`` puts the items aside (an unknown item fails the run: not
retryable); ``charge`` asks the payment gateway, which times out the first
time this process asks it, so its first attempt fails and the second pays (a
recorded IO call: once it answers, a resume or a replay reuses the answer
instead of asking again);
``ship`` spawns a child run that prints the parcel's label, waits for it, and
hands on a tracking number. Set ``SHOP_HOLD`` to a file name to make ``ship``
wait, once its child is done, for as long as that file exists: the docs kill
the run there, then resume it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from statewright.adapters.runtime.executor import Context
from statewright.adapters.runtime.operations import OpFailed, Operations
from statewright.adapters.runtime.program import Program
from statewright.machines.pipeline import Pipeline, SideEffects, Step

operations = Operations()
PRICES = {"mug": 800, "tea": 450, "spoon": 120}  # cents: a manifest holds no floats
gateway_calls = 0


@operations.op("reserve", "v1", exports=("items",))
def reserve(ctx: Context) -> dict[str, Any]:
    unknown = [item for item in ctx.input["items"] if item not in PRICES]
    if unknown:
        raise OpFailed("unknown_item", f"no such item: {', '.join(unknown)}", retryable=False)
    return {"items": sorted(ctx.input["items"])}


@operations.op("charge", "v1", imports=("items",), exports=("receipt",),
               side_effects=SideEffects.APPLY, idempotency_key="payment")
async def charge(ctx: Context) -> dict[str, Any]:
    total = sum(PRICES[item] for item in ctx.inputs["items"])

    def gateway() -> dict[str, Any]:  # stands for an HTTP call that passes ctx.idempotency_key along
        global gateway_calls
        gateway_calls += 1
        if gateway_calls == 1:
            raise TimeoutError("payment gateway timed out")
        return {"paid": total, "reference": f"pay-{ctx.input['order']}"}

    try:
        receipt = await ctx.io.call("payment", gateway)  # recorded once it answers: never asked twice
    except TimeoutError as exc:
        raise OpFailed("gateway_timeout", str(exc)) from None  # retryable: the run tries again
    return {"receipt": receipt}


@operations.op("print_label", "v1", exports=("label",))
def print_label(ctx: Context) -> dict[str, Any]:
    return {"label": f"{ctx.input['order']}: {', '.join(ctx.input['items'])}"}


LABEL = Pipeline("label", "v1", (Step("print", "print_label", "v1"),))


@operations.op("ship", "v1", imports=("receipt",), exports=("tracking", "label"))
async def ship(ctx: Context) -> dict[str, Any]:
    child = await ctx.spawn(LABEL, {"order": ctx.input["order"], "items": ctx.input["items"]}, key="label")
    label = await ctx.wait_for(child, key="label")
    hold = os.environ.get("SHOP_HOLD")
    if hold and Path(hold).exists():
        print(f"{ctx.run_id}  ship holds while {hold} exists", file=sys.stderr, flush=True)
        while Path(hold).exists():
            await asyncio.sleep(0.05)
    return {"tracking": f"trk-{ctx.input['order']}", "label": label.outputs["label.print.run"]["label"]}


program = Program(
    Pipeline("shop", "v1", (Step("reserve", "reserve", "v1"), Step("charge", "charge", "v1"),
                            Step("ship", "ship", "v1"))),
    operations,
    input={"order": "A-17", "items": ["tea", "mug"]},
    run_config={"retry": {"max_attempts": 3, "backoff": {"fixed": {"delay_ms": 10}}}},
)
