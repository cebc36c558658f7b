"""Simulated users: habits, accents, devices, contacts and when they talk to the assistant."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

from fpi.simulate.catalog import (
    CATALOGUE,
    DEVICE_TYPES_WEIGHTED,
    HAS_SCREEN,
    LOCALE_ACCENT,
    LOCALES,
    Entity,
    cumulative,
)
from fpi.simulate.draws import Draws

#: Local-time offset (hours) of each locale, to turn local habits into UTC timestamps.
LOCALE_UTC_OFFSET = {"en-US": -5.0, "en-GB": 0.0, "en-IN": 5.5, "en-AU": 11.0, "en-CA": -5.0}
#: Relative activity per local hour (0..23): quiet nights, morning and evening peaks.
DIURNAL = (
    0.15, 0.08, 0.05, 0.04, 0.05, 0.15, 0.6, 1.3, 1.5, 1.0, 0.8, 0.8,
    0.9, 0.8, 0.7, 0.7, 0.9, 1.3, 1.7, 1.8, 1.6, 1.3, 0.9, 0.4,
)  # fmt: skip
DIURNAL_CUM = cumulative(DIURNAL)
HOURS = tuple(range(24))
#: Relative activity per weekday (Monday first): weekends are busier at home.
WEEKLY = (0.95, 0.95, 0.95, 1.0, 1.05, 1.25, 1.2)


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    type: str
    has_screen: bool


@dataclass(frozen=True, slots=True)
class User:
    """A person with stable habits; every trace of theirs inherits them."""

    id: str
    locale: str
    accent: float  # speech-recognition difficulty of their speech, ~0 (easy) .. 1.5 (hard)
    ms_per_word: float  # speaking rate
    room_snr: float  # dB offset of their home's acoustics
    patience: float  # 0..1: retries rather than abandons after a failure
    domain_cum: tuple[float, ...]  # cumulative preference over the scenario's domains
    devices: tuple[Device, ...]
    device_cum: tuple[float, ...]
    contacts: tuple[Entity, ...]
    appliances: tuple[Entity, ...]
    home: Entity
    peak_hour: float
    activity: float
    follow_up: bool  # has follow-up mode on (no wake word within a few seconds)


def make_users(
    n: int,
    domains: tuple[str, ...],
    domain_weights: tuple[float, ...],
    draws: Draws,
    prefix: str,
) -> list[User]:
    """`n` users with preferences over `domains`; ids are opaque hashes unique per `prefix`."""
    locale_names = tuple(name for name, _ in LOCALES)
    locale_cum = cumulative([w for _, w in LOCALES])
    device_names = tuple(name for name, _ in DEVICE_TYPES_WEIGHTED)
    device_cum = cumulative([w for _, w in DEVICE_TYPES_WEIGHTED])
    towns = CATALOGUE["town"]
    town_cum = cumulative([t.popularity for t in towns])
    users = []
    for i in range(n):
        locale = draws.weighted(locale_names, locale_cum)
        # Each user favours a few domains (a Dirichlet-like draw from exponentials).
        preference = [w * (-math.log(1.0 - draws.u())) ** 2.5 for w in domain_weights]
        n_devices = 1 + int(draws.u() * 2.2)
        devices = tuple(
            Device(
                id=f"dev-{_opaque(f'{prefix}-{i}-{k}')}",
                type=(kind := draws.weighted(device_names, device_cum)),
                has_screen=HAS_SCREEN[kind],
            )
            for k in range(n_devices)
        )
        contacts = tuple(e for e in CATALOGUE["contact"] if draws.chance(0.35))
        appliances = tuple(e for e in CATALOGUE["appliance"] if draws.chance(0.45))
        users.append(
            User(
                id=f"u-{_opaque(f'{prefix}-{i}')}",
                locale=locale,
                accent=max(0.0, LOCALE_ACCENT[locale] + draws.normal(0.0, 0.3)),
                ms_per_word=draws.lognormal(330.0, 0.18),
                room_snr=draws.normal(0.0, 3.0),
                patience=min(1.0, max(0.05, draws.normal(0.6, 0.2))),
                domain_cum=tuple(cumulative(preference)),
                devices=devices,
                device_cum=tuple(cumulative([3.0 if k == 0 else 1.0 for k in range(n_devices)])),
                contacts=contacts or (CATALOGUE["contact"][i % len(CATALOGUE["contact"])],),
                appliances=appliances or (CATALOGUE["appliance"][0],),
                home=draws.weighted(towns, town_cum),
                peak_hour=draws.pick((7.5, 8.5, 12.5, 18.5, 19.5, 20.5, 21.5)),
                activity=draws.lognormal(1.0, 0.8),
                follow_up=draws.chance(0.6),
            )
        )
    return users


def day_weights(start_ms: int, days: int) -> tuple[float, ...]:
    """Cumulative activity of each day of the window, by its weekday."""
    return tuple(cumulative([WEEKLY[(d + _weekday_of(start_ms)) % 7] for d in range(days)]))


def session_start_ms(
    user: User, draws: Draws, start_ms: int, days: int, day_cum: tuple[float, ...]
) -> int:
    """When a dialogue starts (UTC ms): a weekday rhythm, the user's and the global day cycle."""
    day = draws.weighted(range(days), day_cum)
    if draws.chance(0.5):
        local_hour = (draws.normal(user.peak_hour, 1.5)) % 24.0
    else:
        local_hour = draws.weighted(HOURS, DIURNAL_CUM) + draws.u()
    utc_hour = local_hour - LOCALE_UTC_OFFSET[user.locale]
    day_ms = 86_400_000
    t = start_ms + day * day_ms + int(utc_hour * 3_600_000)
    # Keep the dialogue inside the window: wrap around whole days, never past the end.
    end_ms = start_ms + days * day_ms
    while t < start_ms:
        t += day_ms
    while t >= end_ms - 900_000:
        t -= day_ms
    return max(t, start_ms)


def _weekday_of(epoch_ms: int) -> int:
    """Monday = 0 for a UTC epoch in milliseconds (1970-01-01 was a Thursday)."""
    return (epoch_ms // 86_400_000 + 3) % 7


def _opaque(text: str) -> str:
    """A short opaque id, as real dumps carry hashed user and device ids."""
    return f"{zlib.crc32(text.encode()):08x}"
