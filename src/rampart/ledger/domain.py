"""Double-entry bookkeeping, cash accounts, reservations and positions: pure logic.

Cash moves only by `JournalEntry`, whose postings sum to exactly zero: that rule is checked in one
place, `JournalEntry.__post_init__`, so no code path can create or destroy money. An account's
balance is the sum of its postings. Buying power is the settled balance minus reservations: those
held for open orders, and the collateral each short position holds (`Position.margin_held`: under
Regulation T its market value, which the proceeds credited, plus the initial margin on it, marked
to market by the order engine). A price rise can take that collateral beyond the balance: the
account is then in margin deficit, its buying power negative, so nothing that needs buying power
is accepted until it is covered. Amounts are exact Decimals: instruments are defined so that
price x quantity never needs more than 8 decimal places, and the ledger never rounds cash; only
what is held against a margin rate is rounded, and always up (`ledger_ceiling`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from rampart.kernel.errors import ConflictError, ValidationError
from rampart.kernel.money import CASH_PLACES, ZERO, MoneyError, to_decimal

ONE = Decimal(1)
LEDGER_PLACES = Decimal("0.00000001")

#: Largest single deposit the operator command accepts: a typo should not mint a fortune.
MAX_DEPOSIT = Decimal("100000000")


class InvalidAmountError(ValidationError):
    code = "invalid-amount"
    title = "The amount is not valid"


def deposit_amount(amount: object) -> Decimal:
    """The amount of a deposit: positive whole cents, at most `MAX_DEPOSIT`, never a float."""
    try:
        value = to_decimal(amount)
    except MoneyError as exc:
        raise InvalidAmountError(str(exc)) from None
    if value <= 0 or value > MAX_DEPOSIT or value != value.quantize(CASH_PLACES):
        raise InvalidAmountError(f"Deposits are positive whole cents, at most {MAX_DEPOSIT}.")
    return value


#: Where deposits come from and withdrawals go: the world outside the platform.
EXTERNAL_ACCOUNT = "external:funding"
#: The counterpart of every trade at a venue. With the built-in venue both sides of a trade are
#: users of this ledger, so its balance returns to zero after every fill.
CLEARING_ACCOUNT = "venue:clearing"


def cash_account_id(user_id: str) -> str:
    return f"cash:{user_id}"


def ledger_ceiling(amount: Decimal) -> Decimal:
    """Round up to the ledger's places: what is held against a risk is never rounded down."""
    return amount.quantize(LEDGER_PLACES, rounding=ROUND_CEILING)


def short_collateral(quantity: Decimal, price: Decimal, initial_margin: Decimal) -> Decimal:
    """What a position of `quantity` (negative: short) must hold at `price`: nothing for a long
    or flat one; for a short, Regulation T's 100 % of its market value (the proceeds) plus the
    `initial_margin` rate of it (50 %: 150 % in all)."""
    if quantity >= 0:
        return ZERO
    return ledger_ceiling(-quantity * price * (ONE + initial_margin))


class UnbalancedEntryError(ValueError):
    """A journal entry whose postings do not sum to zero: a bug, never a user error."""


class InsufficientFundsError(ConflictError):
    code = "insufficient-buying-power"
    title = "Not enough buying power"


@dataclass(frozen=True, slots=True)
class Posting:
    account_id: str
    #: Positive adds to the account's balance, negative takes from it.
    amount: Decimal


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A balanced set of postings: the only way cash moves."""

    id: str
    kind: str
    reference: str | None
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        if len(self.postings) < 2:
            raise UnbalancedEntryError("a journal entry needs at least two postings")
        total = ZERO
        for posting in self.postings:
            if not isinstance(posting.amount, Decimal) or not posting.amount.is_finite():
                raise UnbalancedEntryError("posting amounts must be finite Decimals")
            if posting.amount == 0:
                raise UnbalancedEntryError("a posting must move a non-zero amount")
            if posting.amount != posting.amount.quantize(LEDGER_PLACES):
                raise UnbalancedEntryError("posting amounts have at most 8 decimal places")
            total += posting.amount
        if total != 0:
            raise UnbalancedEntryError(f"journal entry does not balance (off by {total})")

    @classmethod
    def transfer(
        cls, id: str, kind: str, reference: str | None, source: str, target: str, amount: Decimal
    ) -> JournalEntry:
        return cls(id, kind, reference, (Posting(source, -amount), Posting(target, amount)))


@dataclass(slots=True)
class CashAccount:
    account_id: str
    user_id: str | None
    balance: Decimal = ZERO
    #: Held for open buy and short-sale orders and as the collateral of short positions (see the
    #: module doc): not spendable, still owned.
    reserved: Decimal = ZERO
    dirty: bool = False

    @property
    def buying_power(self) -> Decimal:
        return self.balance - self.reserved

    def reserve(self, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError("cannot reserve a negative amount")
        if amount > self.buying_power:
            raise InsufficientFundsError("The order needs more buying power than is available.")
        self.reserved += amount
        self.dirty = True

    def release(self, amount: Decimal) -> None:
        if amount < 0 or amount > self.reserved:
            # Releasing what was never reserved would mint buying power: refuse loudly.
            raise ValueError("release exceeds the reserved amount")
        self.reserved -= amount
        self.dirty = True

    def hold_for(self, position: Position, amount: Decimal) -> None:
        """Make `position` hold `amount` of this account's cash as collateral (a mark to market).

        Never refused: a short's requirement follows the price whatever the balance, and a
        requirement beyond the balance shows as negative buying power (a margin deficit)."""
        if amount < 0:
            raise ValueError("collateral is never negative")
        if amount == position.margin_held:
            return
        self.reserved += amount - position.margin_held
        position.margin_held = amount
        self.dirty = position.dirty = True


@dataclass(slots=True)
class Position:
    """Holdings of one symbol: positive long, negative short.

    `cost_basis` is the signed total cost of the open quantity (negative for a short), so the
    average cost is exact to compute and never accumulates rounding from repeated averaging.
    """

    user_id: str
    symbol: str
    quantity: Decimal = ZERO
    cost_basis: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    #: Cash of the account held as this position's collateral (a short's; part of `reserved`).
    margin_held: Decimal = ZERO
    new: bool = True
    dirty: bool = False

    @property
    def average_cost(self) -> Decimal:
        if self.quantity == 0:
            return ZERO
        return (self.cost_basis / self.quantity).quantize(LEDGER_PLACES)

    def unrealised_pnl(self, mark: Decimal | None) -> Decimal:
        if mark is None or self.quantity == 0:
            return ZERO
        return (mark * self.quantity - self.cost_basis).quantize(LEDGER_PLACES)

    def apply_fill(self, buy: bool, quantity: Decimal, price: Decimal) -> Decimal:
        """Apply a fill; returns the P&L it realised (closing part only)."""
        if quantity <= 0 or price <= 0:
            raise ValueError("fills have positive quantity and price")
        delta = quantity if buy else -quantity
        realised = ZERO
        self.dirty = True
        if self.quantity == 0 or (self.quantity > 0) == buy:
            self.quantity += delta
            self.cost_basis += delta * price
            return realised
        closing = min(quantity, abs(self.quantity))
        if closing == abs(self.quantity):
            released = self.cost_basis
        else:
            released = (self.cost_basis * closing / abs(self.quantity)).quantize(LEDGER_PLACES)
        # Long closed by a sale: proceeds minus cost. Short closed by a buy: cost (negative basis)
        # released minus what the cover costs.
        realised = closing * price - released if self.quantity > 0 else -released - closing * price
        self.realised_pnl += realised
        self.cost_basis -= released
        self.quantity += closing if buy else -closing
        opening = quantity - closing
        if opening > 0:
            signed = opening if buy else -opening
            self.quantity += signed
            self.cost_basis += signed * price
        return realised


@dataclass(slots=True)
class LedgerBatch:
    """Accounts and positions loaded (and locked) for one transaction, and the entries posted.

    The order engine posts into a batch in memory, then the ledger service writes it at once.
    """

    accounts: dict[str, CashAccount] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    entries: list[JournalEntry] = field(default_factory=list)

    def post(self, entry: JournalEntry) -> None:
        # Validate every account first: an entry is applied entirely or not at all.
        for posting in entry.postings:
            if posting.account_id not in self.accounts:
                raise KeyError(f"account {posting.account_id} is not loaded in this batch")
        for posting in entry.postings:
            account = self.accounts[posting.account_id]
            account.balance += posting.amount
            account.dirty = True
        self.entries.append(entry)
