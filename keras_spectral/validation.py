"""Argument checks shared by the package, with errors in Keras' voice."""


import math
import numbers


def _is_number(value):
    """A finite real number (NumPy scalars included; bool, NaN and inf excluded)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(name, value):
    if not is_int(value) or value <= 0:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a positive integer. "
            f"Received: {name}={value!r}"
        )


def check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Received an invalid value for `{name}`, expected True or False. "
            f"Received: {name}={value!r}"
        )


def check_fraction(name, value):
    """A number in [0, 1)."""
    if not (_is_number(value) and 0.0 <= value < 1.0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a number in [0, 1). "
            f"Received: {name}={value!r}"
        )


def check_non_negative(name, value):
    if not (_is_number(value) and value >= 0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a finite non-negative number. "
            f"Received: {name}={value!r}"
        )


def check_positive(name, value):
    if not (_is_number(value) and value > 0):
        raise ValueError(
            f"Received an invalid value for `{name}`, expected a finite positive number. "
            f"Received: {name}={value!r}"
        )


def check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"Received an invalid value for `{name}`, expected one of {allowed}. "
            f"Received: {name}={value!r}"
        )


def check_exactly_one(**arguments):
    """Exactly one of the keyword arguments is not None."""
    if sum(value is not None for value in arguments.values()) != 1:
        given = ", ".join(f"{name}={value!r}" for name, value in arguments.items())
        names = " and ".join(f"`{name}`" for name in arguments)
        raise ValueError(f"Pass exactly one of {names}. Received: {given}")
