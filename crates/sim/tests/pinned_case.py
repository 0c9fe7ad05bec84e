#!/usr/bin/env python3
"""Expected figures of the simulator's pinned case (`crates/sim/tests/pinned.rs`), computed
independently of the Rust code with exact fractions.

The script re-implements, from their documentation, the rules the test exercises:
- the repo module's valuation, rounding and margin-call rules (the doc comment at the top of
  `crates/state/src/modules/repo.rs`; `fee_base` in `crates/types/src/repo.rs`);
- the simulator's calendar, block times and figures (`crates/sim/src/run.rs`).

It calls no Rust. The book (who lends to whom, the principal and its quantity, the collateral
ranking) is drawn by the simulator from the seed: it is an input here, copied from the draws of
seed 24, not a result. Run it with `python3 crates/sim/tests/pinned_case.py`; it prints a trace of
each run and then each case's figures as the Rust struct the test pins.
"""

import calendar
from collections import defaultdict
from datetime import date
from fractions import Fraction
from math import ceil, floor

# --- The market: the same closes as the CSV files the test writes. -------------------------

VALUATION = "JPY"
# Security -> (class, currency). Bonds are quoted per 100 face (one unit = one face unit).
SECURITIES = {
    "JGB-10Y": ("bond", "JPY"),
    "JP-EQUITY": ("equity", "JPY"),
    "US-EQUITY": ("equity", "USD"),
}
# Cash tokens and their minor-unit exponents: the simulator issues the valuation currency in
# whole units and every other currency in hundredths.
CASH = {"JPY": 0, "USD": 2}
# date, JGB-10Y, JP-EQUITY, US-EQUITY, USD/JPY.
CLOSES = [
    ("2025-01-08", "100.250", "2700.0", "161.01", "150.000"),
    ("2025-01-09", "100.100", "2781.0", "162.50", "150.250"),
    ("2025-01-10", "99.900", "2650.0", "158.40", "149.500"),
    ("2025-01-13", "99.900", "2702.5", "158.40", "149.500"),
    ("2025-01-14", "100.050", "2690.0", "160.00", "151.000"),
    ("2025-01-15", "100.150", "2700.0", "155.00", "148.500"),
]
DATES = [date.fromisoformat(row[0]) for row in CLOSES]
PRICES = [
    {name: Fraction(text) for name, text in zip(SECURITIES, row[1:4])} for row in CLOSES
]
RATES = [{"USD": Fraction(row[4])} for row in CLOSES]

# --- The book: drawn by the simulator from seed 24 (3 parties, 3 contracts). Inputs. -------

# (lender, borrower, principal asset, principal quantity, collateral securities best first).
BOOK = [
    (1, 2, "JP-EQUITY", 192_000, ["JGB-10Y", "US-EQUITY"]),
    (0, 2, "JGB-10Y", 679_469_000, ["JP-EQUITY", "US-EQUITY"]),
    (2, 0, "US-EQUITY", 25_000, ["JGB-10Y", "JP-EQUITY"]),
]
HAIRCUT_BPS = 200
RATE = Fraction("0.001")  # per year, ACT/365 Fixed
# Each configuration's term in business days (every contract and every roll has it). With two
# days every contract is marked once between rolls; with three, twice, so that a call the
# threshold skips on one day shows in the next day's exposure.
TERMS = [2, 3]
CASES = [(1, 0), (1, 200)]  # (collateral securities, threshold in bps)
BPS_WHOLE = 10_000

# --- Time. -------------------------------------------------------------------------------

MS_PER_SECOND = 1_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
YEAR_MS = 365 * MS_PER_DAY


def midnight_ms(day):
    """Midnight UTC starting business day `day` (beyond the history: calendar days after it)."""
    last = len(DATES) - 1
    extra = max(0, day - last)
    return calendar.timegm(DATES[min(day, last)].timetuple()) * 1_000 + extra * MS_PER_DAY


def start_ms(day):
    """When the contracts starting on `day` start: the close is published at 18:00 and each
    later block comes a second after the one before. Day 0: close, registration, approval,
    start (3 s after 18:00). Later days: close, one block of the mark-to-market walk (it marks
    up to 1,000 contracts, and runs once even with none open), registration, approval, start
    (4 s after 18:00)."""
    blocks_after_close = 3 if day == 0 else 4
    return midnight_ms(day) + 18 * MS_PER_HOUR + blocks_after_close * MS_PER_SECOND


def maturity_ms(day):
    """Maturities are due at 17:00 UTC of their business day; the maturing contracts' block is
    the day's first at 17:00, so the fee accrues exactly until then."""
    return midnight_ms(day) + 17 * MS_PER_HOUR


# --- The ledger's rules. -------------------------------------------------------------------


def unit_value(asset, day):
    """One unit in the valuation currency: price x FX (bonds per 100 face); a cash token is
    worth its minor unit, converted at the day's rate."""
    if asset in CASH:
        value, currency = Fraction(1, 10 ** CASH[asset]), asset
    else:
        kind, currency = SECURITIES[asset]
        value = PRICES[day][asset] / (100 if kind == "bond" else 1)
    return value * (1 if currency == VALUATION else RATES[day][currency])


def cents(value):
    """A reported value: rounded half-up to two decimals, in hundredths."""
    assert value >= 0
    return floor(value * 100 + Fraction(1, 2))


def weights(count):
    """Equal basket weights in bps; the first takes the remainder."""
    return [BPS_WHOLE // count + (BPS_WHOLE % count if i == 0 else 0) for i in range(count)]


def valuation(contract, day, threshold_bps):
    principal, quantity, basket, holdings = (
        contract["principal"],
        contract["quantity"],
        contract["basket"],
        contract["holdings"],
    )
    exposure = unit_value(principal, day) * quantity
    required = exposure * Fraction(BPS_WHOLE + HAIRCUT_BPS, BPS_WHOLE)
    # Each asset covers its share of the required value on its own, in whole units rounded up.
    targets = [
        ceil(required * Fraction(weight, BPS_WHOLE) / unit_value(asset, day))
        for asset, weight in zip(basket, weights(len(basket)))
    ]
    held = sum(unit_value(a, day) * q for a, q in zip(basket, holdings))
    target_value = sum(unit_value(a, day) * q for a, q in zip(basket, targets))
    margin = exposure * Fraction(threshold_bps, BPS_WHOLE)
    call = targets != holdings and abs(required - held) > margin
    return exposure, required, held, targets, target_value, call


def fee(contract, until_ms):
    """fee = base x rate x elapsed / year, rounded down; the base is the exposure at start
    rounded half-up to the fee asset's minor unit (whole yen)."""
    elapsed = until_ms - contract["started_ms"]
    return floor(contract["fee_base"] * RATE * Fraction(elapsed, YEAR_MS))


# --- The simulator's run and figures. ------------------------------------------------------


def run(term_days, collateral, threshold_bps, trace):
    figures = dict(
        net_exposure_mean=0,
        net_exposure_peak=0,
        margin_calls=0,
        margin_calls_failed=0,
        margin_call_value=0,
        token_transfers=0,
        marks=0,
        maturities=0,
    )
    contracts = [None] * len(BOOK)
    exposure_sum, days_marked = 0, 0

    def pair_of(k):
        lender, borrower = BOOK[k][0], BOOK[k][1]
        return (min(lender, borrower), max(lender, borrower)), (1 if lender < borrower else -1)

    def start(k, day, pairs):
        lender, borrower, principal, quantity, ranking = BOOK[k]
        contract = dict(
            principal=principal,
            quantity=quantity,
            basket=ranking[:collateral],
            holdings=[0] * collateral,
            maturity_day=day + term_days,
        )
        exposure, _, _, targets, target_value, _ = valuation(contract, day, threshold_bps)
        contract["holdings"] = targets
        contract["fee_base"] = floor(exposure * 10 ** CASH[VALUATION] + Fraction(1, 2))
        contract["started_ms"] = start_ms(day)
        contracts[k] = contract
        # The principal leg and one delivery per collateral asset.
        figures["token_transfers"] += 1 + collateral
        # The start's valuation counts towards the day's exposure (held = what was delivered).
        pair, sign = pair_of(k)
        pairs[pair] += sign * (cents(exposure) - cents(target_value))
        trace(
            f"  start   c{k}: exposure {cents(exposure)} held {cents(target_value)} "
            f"targets {targets} fee base {contract['fee_base']} at {contract['started_ms']}"
        )

    start_pairs = defaultdict(int)
    for k in range(len(BOOK)):
        start(k, 0, start_pairs)
    # Day 0 is not a marking day.
    for day in range(1, len(DATES)):
        trace(f"day {day} ({DATES[day]})")
        pairs = defaultdict(int)
        maturing = [k for k in range(len(BOOK)) if contracts[k]["maturity_day"] == day]
        for k in maturing:
            charged = fee(contracts[k], maturity_ms(day))
            figures["maturities"] += 1
            # Principal back, each collateral asset back, and the fee if any.
            figures["token_transfers"] += 1 + collateral + (1 if charged > 0 else 0)
            trace(f"  mature  c{k}: fee {charged}")
        for k in range(len(BOOK)):
            if k in maturing:
                continue
            contract = contracts[k]
            exposure, required, held, targets, target_value, call = valuation(
                contract, day, threshold_bps
            )
            figures["marks"] += 1
            pair, sign = pair_of(k)
            pairs[pair] += sign * (cents(exposure) - cents(held))
            gap = (required - held) / exposure
            trace(
                f"  mark    c{k}: exposure {cents(exposure)} held {cents(held)} "
                f"(required - held = {float(gap):+.5%} of exposure) call {call}"
            )
            if call:
                figures["margin_calls"] += 1
                figures["margin_call_value"] += abs(cents(target_value) - cents(held))
                moved = sum(1 for h, t in zip(contract["holdings"], targets) if h != t)
                figures["token_transfers"] += moved
                trace(
                    f"          call: {contract['holdings']} -> {targets}, "
                    f"held {cents(target_value)}"
                )
                contract["holdings"] = targets
        for k in maturing:
            start(k, day, pairs)
        exposure = sum(abs(net) for net in pairs.values())
        trace(f"  net exposure {exposure} by pair {dict(sorted(pairs.items()))}")
        figures["net_exposure_peak"] = max(figures["net_exposure_peak"], exposure)
        exposure_sum += exposure
        days_marked += 1
    figures["net_exposure_mean"] = floor(Fraction(exposure_sum, days_marked) + Fraction(1, 2))
    return figures


def main():
    for term_days in TERMS:
        for collateral, threshold_bps in CASES:
            case = f"Case {{ collateral: {collateral}, threshold_bps: {threshold_bps} }}"
            print(f"# terms of {term_days} days, {case}")
            figures = run(term_days, collateral, threshold_bps, lambda line: print(f"#{line}"))
            print(f"terms of {term_days} days, {case}: Figures {{")
            for name, value in figures.items():
                print(f"    {name}: {value:_},")
            print("}")


if __name__ == "__main__":
    main()
