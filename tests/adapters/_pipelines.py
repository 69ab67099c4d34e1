"""The executor tests' pipelines: a three-step shop with a flaky step and a child run, and what its code did.

`SHOP` runs ``fetch -> price -> report`` (states ``shop.<step>.run``):

* ``fetch`` exports ``rows`` (its config's, ``[1, 2, 3]``) and reads the
  recorded clock;
* ``price`` (a side effect with idempotency key ``quote``) imports ``rows``,
  reads the clock, and asks a quote service through
  ``ctx.io.call("quote", ...)``; the service times out on attempt 1
  (in any process: it depends on the attempt number, not on a counter), so
  the step fails once and succeeds on attempt 2 with ``total = 6 * 3 = 18``.
  Attempt 1 recorded a fact (its clock) before it failed;
* ``report`` imports ``total``, spawns child run ``<run id>.dbl`` of `SUB`
  (one state, ``sub.d.run``, doubling its input) and waits for it:
  ``"total 18 doubled 36"``.

`Shop` builds the `Operations` and counts what its functions did -- calls per
operation, live calls to the quote service -- and can hold an operation at a
gate (`Shop.hold`) so a test can cancel a drive while it is inside the
operation. The later kill -9 tests and the command line run the same
pipeline from other processes: its outcome depends only on the run's records.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from statewright.adapters.runtime.executor import Context
from statewright.adapters.runtime.operations import Operations
from statewright.machines.pipeline import Pipeline, SideEffects, Step

__all__ = ["OUTPUTS", "SHOP", "SUB", "Gate", "Shop", "STATES"]

SHOP = Pipeline("shop", "v1", (
    Step("fetch", "fetch", "v1", {"rows": [1, 2, 3]}),
    Step("price", "price", "v1"),
    Step("report", "report", "v1"),
))
SUB = Pipeline("sub", "v1", (Step("d", "double", "v1"),))
STATES = ("shop.fetch.run", "shop.price.run", "shop.report.run")
OUTPUTS = {
    "shop.fetch.run": {"rows": [1, 2, 3]},
    "shop.price.run": {"total": 18},
    "shop.report.run": {"text": "total 18 doubled 36"},
}
"""What a completed run of `SHOP` reports: each state's exports."""


class Gate:
    """Holds an operation: ``entered`` is set when it arrives, and it goes on once ``opened`` is set."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()

    async def pass_through(self) -> None:
        self.entered.set()
        await self.opened.wait()


class Shop:
    """The operations of `SHOP` and `SUB`, with counters of what they did (see the module doc)."""

    def __init__(self) -> None:
        self.ops = Operations()
        self.calls: Counter[str] = Counter()
        """Calls of each operation's function, by op id."""
        self.quotes = 0
        """Live calls of the quote service (the transport behind ``io.call("quote")``)."""
        self.keys: list[tuple[str, int, str]] = []
        """``(state id, attempt, ctx.idempotency_key)`` of every call, in order."""
        self.gates: dict[str, Gate] = {}
        self._at: dict[str, int | None] = {}
        self._register()

    def hold(self, op_id: str, attempt: int | None = None) -> Gate:
        """Make operation ``op_id`` (only its attempt ``attempt``, if given) wait at a gate until the gate opens."""
        gate = self.gates[op_id] = Gate()
        self._at[op_id] = attempt
        return gate

    def release(self, op_id: str) -> None:
        """Take the gate away: later calls of ``op_id`` go straight on (a held call waits for `Gate.opened`)."""
        del self.gates[op_id]

    async def _enter(self, ctx: Context) -> None:
        self.calls[ctx.op_id] += 1
        self.keys.append((ctx.state_id, ctx.attempt, ctx.idempotency_key))
        gate = self.gates.get(ctx.op_id)
        if gate is not None and self._at[ctx.op_id] in (None, ctx.attempt):
            await gate.pass_through()

    def _register(self) -> None:
        ops = self.ops

        @ops.op("fetch", "v1", exports=("rows",))
        async def fetch(ctx: Context) -> dict[str, Any]:
            await self._enter(ctx)
            await ctx.now()
            return {"rows": list(ctx.config["rows"])}

        @ops.op("price", "v1", imports=("rows",), exports=("total",), side_effects=SideEffects.APPLY,
                idempotency_key="quote")
        async def price(ctx: Context) -> dict[str, Any]:
            await self._enter(ctx)
            await ctx.now()

            def quote() -> dict[str, int]:
                self.quotes += 1
                if ctx.attempt == 1:
                    raise TimeoutError("quote service timed out")
                return {"rate": 3}

            rate = (await ctx.io.call("quote", quote))["rate"]
            return {"total": sum(ctx.inputs["rows"]) * rate}

        @ops.op("report", "v1", imports=("total",), exports=("text",))
        async def report(ctx: Context) -> dict[str, Any]:
            await self._enter(ctx)
            total = ctx.inputs["total"]
            child = await ctx.spawn(SUB, total, key="dbl")
            done = await ctx.wait_for(child, key="dbl")
            return {"text": f"total {total} doubled {done.outputs['sub.d.run']['n']}"}

        @ops.op("double", "v1", exports=("n",))
        async def double(ctx: Context) -> dict[str, Any]:
            await self._enter(ctx)
            return {"n": ctx.input * 2}
