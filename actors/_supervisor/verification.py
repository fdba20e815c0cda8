"""Stage rules, held by the supervisor actor: the provenance a stage requires of its input,
and the verifier every output of the stage must pass before it is released.

``StageRules.admit`` runs on every submit the actor receives (a spec sent straight to the
actor included): the envelope's mark is believed only up to what its sender can vouch for
(the driver, ``"system"`` or ``"human"``, anything; anyone else UNVERIFIED_AGENT), and is
refused below the stronger of the stage's ``requires`` and the submission's own.

``OutputGate.accept`` runs on every valid output. The agent's derived mark comes back with
it (``actors._agent.derived.Produced``) and is believed up to what the agent that ran it
can vouch for: VERIFIED for an agent declared as a stage's verifier, UNVERIFIED_AGENT for
any other. An output of a stage with a verifier is then held while the verifier checks
its claims, as a child subtask of stage ``verify:<stage>``: a verified verdict releases it
as VERIFIED; a rejected verdict, or a verifier that fails (raises, dies, misses its
deadline), fails the attempt with reason ``unverified`` and the stage's plan follows
(retry, reroute, escalate). The attempt's own deadline keeps running meanwhile.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta

from pydantic import BaseModel

from policies import Abandon, Deadlines, Provenance, ProvenanceTrust
from runtime import FailureReason, ProvenanceError

from .._agent.derived import Produced
from .background import Background
from .pool import group_of
from .spec import StageRule, make_spec
from .state import Attempt, Live
from .types import Outcome, SubtaskSpec
from .verify import Verdict, VerifyClaims, claims_of

_TRUSTED_SENDERS = ("system", "human")


class StageRules:
    """The rule of each declared stage, and the trust that follows from them."""

    def __init__(self) -> None:
        self._rules: dict[str, StageRule] = {}
        self._trust = ProvenanceTrust()

    def declare(self, stage: str, rule: StageRule) -> None:
        """Set the rule of ``stage`` (replacing an earlier one)."""
        self._rules[stage] = rule
        verifiers = {r.verifier: Provenance.VERIFIED for r in self._rules.values() if r.verifier}
        self._trust = ProvenanceTrust(vouchers=verifiers)

    def rule(self, stage: str | None) -> StageRule | None:
        """The rule of ``stage``, if it was declared with one."""
        return self._rules.get(stage or "")

    def admit(self, spec: SubtaskSpec) -> SubtaskSpec:
        """``spec`` with its envelope's mark as believed, if the stage accepts it.

        Raises:
            ProvenanceError: the believed mark is weaker than the stage's requirement
                or the submission's own ``requires``; nothing is submitted.
        """
        env = spec.envelope
        claimed = env.provenance  # only the driver is believed above the bottom mark
        believed = claimed if env.sender in _TRUSTED_SENDERS else Provenance.UNVERIFIED_AGENT
        rule = self.rule(spec.stage)
        needed = [spec.requires, None if rule is None else rule.requires]
        for required in needed:
            if required is not None and not believed.at_least(required):
                where = f"stage {spec.stage or spec.to!r}"
                raise ProvenanceError(where, required.value, believed.value)
        if believed is claimed:
            return spec
        return replace(spec, envelope=replace(env, provenance=believed))

    def believed(self, replica: str, produced: object) -> tuple[BaseModel | object, Provenance]:
        """An attempt's result and the mark believed of it: the derived mark its agent
        sent back (UNVERIFIED_AGENT when none, or no valid one, came with it), capped at
        the agent's ceiling."""
        if not isinstance(produced, Produced):
            return produced, Provenance.UNVERIFIED_AGENT
        try:
            claimed = Provenance(produced.provenance)
        except ValueError:  # a malformed mark is believed as the bottom one
            claimed = Provenance.UNVERIFIED_AGENT
        return produced.output, self._trust.believed(group_of(replica), claimed)


Succeed = Callable[[Live, Attempt, BaseModel, Provenance], None]
Fail = Callable[[Live, Attempt, FailureReason, str | None, str], None]


class OutputGate:
    """Releases each valid output, after its stage's verifier passed it if it has one.

    Args:
        rules: the stage rules.
        run: how a verification subtask is submitted and awaited (the core's ``run``).
        background: where verifications run.
    """

    def __init__(
        self,
        rules: StageRules,
        run: Callable[[SubtaskSpec], Awaitable[Outcome]],
        background: Background,
    ) -> None:
        self.rules = rules
        self._run = run
        self._background = background

    def accept(
        self, live: Live, attempt: Attempt, output: BaseModel, mark: Provenance,
        succeed: Succeed, fail: Fail,
    ) -> None:  # fmt: skip
        """Release ``output`` (``succeed``) or, for a stage with a verifier, start its
        verification; ``fail`` follows a rejection."""
        rule = self.rules.rule(live.spec.stage)
        if rule is None or rule.verifier is None:
            succeed(live, attempt, output, mark)
            return
        self._background.spawn(self._verify(live, attempt, output, rule, succeed, fail))

    async def _verify(
        self, live: Live, attempt: Attempt, output: BaseModel, rule: StageRule,
        succeed: Succeed, fail: Fail,
    ) -> None:  # fmt: skip
        assert rule.verifier is not None
        spec = self.request(live, attempt, output, rule.verifier, rule.verify_within)
        outcome = await self._run(spec)
        if attempt.over:  # its deadline passed, or it was cancelled, meanwhile
            return
        attempt.over = True
        verdict = outcome.output
        if outcome.error is not None:
            why = f"{outcome.error.reason}: {outcome.error.detail}"
            fail(live, attempt, FailureReason.UNVERIFIED, "verifier", f"verifier failed ({why})")
        elif not isinstance(verdict, Verdict) or not verdict.verified:
            detail = verdict.detail if isinstance(verdict, Verdict) else "no verdict"
            fail(live, attempt, FailureReason.UNVERIFIED, "rejected", f"rejected: {detail}")
        else:
            succeed(live, attempt, output, Provenance.VERIFIED)

    @staticmethod
    def request(
        live: Live, attempt: Attempt, output: BaseModel, verifier: str, within: timedelta
    ) -> SubtaskSpec:
        """The verification subtask of one attempt's output: a child of the subtask,
        named after the attempt (a retried attempt is verified anew), not retried (its
        failure fails the attempt, whose plan decides)."""
        stage = live.spec.stage or live.spec.to
        by = attempt.replica or live.target
        request = VerifyClaims(stage=stage, claims=claims_of(output, by))
        task_id = f"{live.spec.subtask_id}.verify.{attempt.number}"
        env = live.spec.envelope.child(sender="supervisor", task_id=task_id)
        return make_spec(
            request, to=verifier, expect=Verdict, deadline=Deadlines(running=within),
            retry=None, on_failure=Abandon(), envelope=env, parent=live.spec.subtask_id,
            stage=f"verify:{stage}", run=live.spec.run,
        )  # fmt: skip
