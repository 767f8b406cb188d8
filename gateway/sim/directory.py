"""Who is in the simulated space: members, login accounts without a membership, check-in
tokens and OAuth access tokens, with the set-up helpers tests use and the token API.

Logins are e-mail addresses compared without case (as Cobot's sign-in does); tokens
compare exactly (case and separators matter: a client normalises them).
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from gateway.sim.model import (
    ALL_SCOPES,
    LOGIN_INCORRECT,
    TOKEN_TAKEN,
    AccountKind,
    Invalid,
    Missing,
    Plan,
    Role,
    SimAccessToken,
    SimAccount,
    SimMember,
)


class Directory:
    def __init__(self, *, seed: int = 0) -> None:
        # Ids are not secrets; a seeded generator makes runs repeatable.
        self._rng = random.Random(seed)  # noqa: S311
        self.members: dict[str, SimMember] = {}
        self.accounts: dict[str, SimAccount] = {}  # by login, casefolded
        self.tokens: dict[str, str] = {}  # check-in token -> membership id
        self.access_tokens: dict[str, SimAccessToken] = {}
        # So a space of thousands of members stays quick. Members are added through
        # add_member (which keeps it); a login changed afterwards is not seen.
        self._logins: dict[str, str] = {}  # casefolded login -> membership id

    # --- setting the space up -----------------------------------------------------

    def add_member(
        self,
        name: str,
        login: str,
        password: str,
        *,
        id: str | None = None,
        confirmed: bool = True,
        plan: Plan = Plan.UNLIMITED,
        time_passes: int = 0,
        tokens: Iterable[str] = (),
    ) -> SimMember:
        member = SimMember(
            id=id or self._hex(32),
            name=name,
            login=login,
            password=password,
            confirmed=confirmed,
            plan=plan,
        )
        if member.id in self.members or self._login_taken(login):
            raise ValueError(f"member {member.id} or login {login!r} exists already")
        self.members[member.id] = member
        self._logins[login.casefold()] = member.id
        self.add_time_passes(member.id, time_passes)
        for token in tokens:
            self.register_token(token, member.id)
        return member

    def add_account(
        self, login: str, password: str, *, kind: AccountKind = AccountKind.GUEST, name: str = ""
    ) -> SimAccount:
        if self._login_taken(login):
            raise ValueError(f"login {login!r} exists already")
        account = SimAccount(login=login, password=password, kind=kind, name=name)
        self.accounts[login.casefold()] = account
        return account

    def add_access_token(
        self,
        token: str | None = None,
        *,
        role: Role = Role.ADMIN,
        membership_id: str | None = None,
        scopes: Iterable[str] = ALL_SCOPES,
        user: str = "",
    ) -> SimAccessToken:
        if role is Role.MEMBER and membership_id not in self.members:
            raise ValueError("a member's access token needs an existing membership_id")
        access = SimAccessToken(
            token=token or self._hex(32),
            role=role,
            membership_id=membership_id,
            scopes=frozenset(scopes),
            user=user,
        )
        self.access_tokens[access.token] = access
        return access

    def add_time_passes(self, membership_id: str, count: int) -> None:
        member = self._member(membership_id)
        member.time_passes.extend(self._hex(32) for _ in range(count))

    def register_token(self, token: str, membership_id: str) -> None:
        """Set-up helper (not the API): raises ValueError on a blank or taken token."""
        if membership_id not in self.members:
            raise ValueError(f"no membership {membership_id}")
        if not token or token in self.tokens:
            raise ValueError(f"token {token!r} is blank or taken")
        self.tokens[token] = membership_id

    # --- lookups ------------------------------------------------------------------

    def authenticate(self, bearer: str) -> SimAccessToken | None:
        return self.access_tokens.get(bearer)

    def member(self, membership_id: str) -> SimMember:
        return self._member(membership_id)

    # --- the token API: /api/check_in_tokens -------------------------------------

    def list_tokens(self) -> list[tuple[str, SimMember]]:
        return [(token, self.members[mid]) for token, mid in self.tokens.items()]

    def get_token(self, token: str) -> SimMember:
        membership_id = self.tokens.get(token)
        if membership_id is None:
            raise Missing("token not found")
        return self.members[membership_id]

    def create_token(self, membership_id: str, token: str) -> SimMember:
        errors = {}
        if not token:
            errors["token"] = "can't be blank"
        elif token in self.tokens:
            errors.update(TOKEN_TAKEN)
        if membership_id not in self.members:
            errors["membership_id"] = "membership not found"
        if errors:
            raise Invalid(errors)
        self.tokens[token] = membership_id
        return self.members[membership_id]

    def delete_token(self, token: str) -> None:
        if self.tokens.pop(token, None) is None:
            raise Missing("token not found")

    def sign_in(self, login: str, password: str) -> SimMember | SimAccount | None:
        """Who these credentials belong to (the OAuth sign-in form), or None."""
        try:
            return self._by_credentials(login, password)
        except Invalid:
            return None

    # --- internals (the check-in operations use these too) -----------------------

    def _by_credentials(self, login: str, password: str) -> SimMember | SimAccount:
        member = self._member_by_login(login)
        if member is not None and member.password == password:
            return member
        account = self.accounts.get(login.casefold())
        if account is not None and account.password == password:
            return account
        raise Invalid(LOGIN_INCORRECT)

    def _by_token(self, token: str, unknown: dict[str, str]) -> SimMember:
        membership_id = self.tokens.get(token) if token else None
        if membership_id is None:
            raise Invalid(unknown)
        return self.members[membership_id]

    def _member_by_login(self, login: str) -> SimMember | None:
        # Logins are e-mail addresses, compared without case (as Cobot's sign-in does).
        membership_id = self._logins.get(login.casefold())
        return self.members.get(membership_id) if membership_id else None

    def _login_taken(self, login: str) -> bool:
        return login.casefold() in self.accounts or self._member_by_login(login) is not None

    def _member(self, membership_id: str) -> SimMember:
        member = self.members.get(membership_id)
        if member is None:
            raise Missing("membership not found")
        return member

    def _hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"
