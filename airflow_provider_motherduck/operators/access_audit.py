"""The access audit operator: who holds which roles, reads which shares, has attached what, and the rules broken."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_motherduck._compat import Context
from airflow_provider_motherduck.arguments import Check, check_bool, check_name_list, optional
from airflow_provider_motherduck.exceptions import MotherDuckError
from airflow_provider_motherduck.operators._base import MotherDuckBaseOperator
from airflow_provider_motherduck.validation import check_object_name
from airflow_provider_motherduck.workflows.access_report import access_table, judge_access, read_access
from airflow_provider_motherduck.workflows.audit import check_usernames


def check_share_names(value: Any, field: str) -> list[str]:
    """A list of share names (or its JSON text), each checked; duplicates (ignoring case) dropped."""
    return check_name_list(value, field, check_object_name, "a list of share names (or its JSON text)")


class MotherDuckAccessAuditOperator(MotherDuckBaseOperator):
    """Report each account's roles, the shares it can read and through which grant, and what it attached.

    See :mod:`~airflow_provider_motherduck.workflows.access_report` for the report and its rules.
    Run it with an Admin's connection over either SQL transport; it only reads.

    :param usernames: the accounts (templated; a list, or its JSON text). Default: every active user.
    :param restricted_shares: names of shares that must be restricted (templated); one open to the
        organisation (access ``organization`` or ``unrestricted``) breaks ``restricted_share_open``.
    :param shares: more share names to read (templated), beside the connection's own shares
        and ``restricted_shares``. MotherDuck lists a share to its owner only; an Admin reads
        any share's grants by name.
    :param read_attachments: also read what each service account attached, as that account: one
        short-lived session token is minted and revoked per account (default ``False``).
    :param fail_on_violation: fail the task when a rule is broken, naming each violation.

    XCom: ``{"accounts": [...], "shares": [...], "violations": [...], "missing_shares": [...]}``.
    Account rows: ``{"username", "is_service_account", "roles": [{"role", "direct"}], "shares":
    [{"share", "owner", "via", "role"}], "attached": [{"alias", "database"}] or None (not read),
    "breaks": [rules]}``, ``via`` one of ``owner``, ``user``, ``role`` (``role`` names it),
    ``organization``, ``unrestricted``. Share rows: ``{"share", "owner", "access", "grantees":
    [{"grantee", "grantee_type"}], "breaks"}``. Violations: ``{"rule", "username", "share"}``.
    """

    writes = False

    template_fields: Sequence[str] = ("usernames", "restricted_shares", "shares")

    def __init__(
        self,
        *,
        usernames: Sequence[str] | str | None = None,
        restricted_shares: Sequence[str] | str = (),
        shares: Sequence[str] | str = (),
        read_attachments: bool = False,
        fail_on_violation: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.usernames = usernames
        self.restricted_shares = restricted_shares
        self.shares = shares
        self.read_attachments = read_attachments
        self.fail_on_violation = fail_on_violation
        self.check_args(rendered=False)

    def arg_checks(self) -> dict[str, Check]:
        return {
            "usernames": optional(check_usernames),
            "restricted_shares": check_share_names,
            "shares": check_share_names,
            "read_attachments": check_bool,
            "fail_on_violation": check_bool,
        }

    def execute_checked(self, context: Context) -> dict[str, Any]:
        facts = read_access(
            self.hook,
            usernames=self.usernames,
            shares=[*self.restricted_shares, *self.shares],
            attachments=self.read_attachments,
        )
        report = judge_access(facts, self.restricted_shares)
        violations = report["violations"]
        self.log.info(
            "Access of %d account(s) over %d share(s): %d violation(s).",
            len(report["accounts"]),
            len(report["shares"]),
            len(violations),
        )
        for line in access_table(report).splitlines():  # a record per line: every handler keeps it readable
            self.log.info("%s", line)
        if report["missing_shares"]:
            self.log.warning("Share(s) named but not found: %s", ", ".join(report["missing_shares"]))
        if violations and self.fail_on_violation:
            raise MotherDuckError(
                f"{len(violations)} access violation(s):\n"
                + "\n".join(f"  - {v['rule']}: {v['username'] or v['share']}" for v in violations)
            )
        return report
