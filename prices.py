"""What tokens cost: the price table by model family, used when a usage report carries no cost.

Prices are USD per million tokens. A model is priced by the longest table key found in its name, so
`claude-opus-4-5-20251101` takes `opus-4-5` before `opus`. Pure data and arithmetic: no database.
"""
import json

# Anthropic's list prices (anthropic.com/pricing, as published in 2025), standard tier; cache writes at
# the 5-minute rate. Estimates: batch, long-context and regional prices differ, and a newer model of a
# family may cost something else. SWITCHBOARD_PRICES_FILE overrides or adds entries.
DEFAULT_PRICES = {
    "opus": {"input": 15.0, "output": 75.0, "cache_write": 18.75, "cache_read": 1.50},
    "opus-4-5": {"input": 5.0, "output": 25.0, "cache_write": 6.25, "cache_read": 0.50},
    "sonnet": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.30},
    "haiku": {"input": 1.0, "output": 5.0, "cache_write": 1.25, "cache_read": 0.10},
    "3-5-haiku": {"input": 0.80, "output": 4.0, "cache_write": 1.0, "cache_read": 0.08},
}
RATES = ("input", "output", "cache_write", "cache_read")

prices = dict(DEFAULT_PRICES)


def load(path):
    """The default table with the entries of the JSON file at `path` (if any) added or replacing;
    ValueError saying what is wrong with the file."""
    table = dict(DEFAULT_PRICES)
    if not path:
        return table
    try:
        with open(path, encoding="utf-8") as f:
            extra = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None
    if not isinstance(extra, dict):
        raise ValueError(f"{path}: not a JSON object of model families")
    for family, rates in extra.items():
        if (not family or not isinstance(rates, dict) or set(rates) != set(RATES)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in rates.values())):
            raise ValueError(f"{path}: {family!r} must map to {{{', '.join(RATES)}}}, each a number >= 0 "
                             "(USD per million tokens)")
        table[family.lower()] = {name: float(rates[name]) for name in RATES}
    return table


def configure(path):
    global prices
    prices = load(path)


def rates_for(model):
    """The rates of the longest table key in `model`, or None (an unknown or absent model)."""
    if not model:
        return None
    name = model.lower()
    matches = [family for family in prices if family in name]
    return prices[max(matches, key=len)] if matches else None


def cost(model, input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens):
    """USD for these tokens of `model`; 0 for a model the table does not know."""
    rates = rates_for(model)
    if rates is None:
        return 0.0
    return (input_tokens * rates["input"] + output_tokens * rates["output"]
            + cache_creation_tokens * rates["cache_write"] + cache_read_tokens * rates["cache_read"]) / 1_000_000
