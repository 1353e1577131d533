"""The policy file: the built-in seed table, precise errors, and reloads that keep the old one."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.cli.main import main
from gateway.config.customers import load_customers
from gateway.sla.policy import DEFAULT_POLICY, load_policy, parse_policy, reload_policy, seed_policy
from rules.config_errors import ConfigError

H = timedelta(hours=1)
SEED = DEFAULT_POLICY.read_text(encoding="utf-8")

# The seed's comparison table: (tier, priority) -> resolution target, working time or not.
RESOLUTION = {
    ("8/5", "critical"): (5 * H, True), ("8/5", "high"): (8 * H, True),
    ("8/5", "medium"): (16 * H, True), ("8/5", "low"): (40 * H, True),
    ("24/7", "critical"): (5 * H, False), ("24/7", "high"): (8 * H, False),
    ("24/7", "medium"): (16 * H, False), ("24/7", "low"): (40 * H, True),
    ("premium", "critical"): (4 * H, False), ("premium", "high"): (6 * H, False),
    ("premium", "medium"): (16 * H, False), ("premium", "low"): (40 * H, True),
}
REACTION = {"8/5": (H, True), "24/7": (H, False), "premium": (timedelta(minutes=15), False)}


def test_built_in_policy_is_the_seed_table() -> None:
    """Every target of the built-in policy is the seed's, in the seed's unit; consultations
    and every 8/5 target count in working time; only 8/5 registers in working hours only."""
    policy = seed_policy()
    assert sorted(policy.tiers) == ["24/7", "8/5", "premium"]
    for (tier, priority), (duration, working) in RESOLUTION.items():
        for kind in ("incident", "administration", "feature_request", "consultation"):
            targets = policy.targets_for(tier, kind, priority)
            in_working = working or kind == "consultation"
            assert targets.resolution.duration == duration
            assert (targets.resolution.calendar is not None) == in_working
            assert targets.reaction.duration == REACTION[tier][0]
            assert (targets.reaction.calendar is not None) == (REACTION[tier][1] or
                                                               kind == "consultation")
    assert [t.target_pct for t in policy.tiers.values()] == [90, 90, 90]
    assert policy.tiers["8/5"].intake is not None
    assert policy.tiers["24/7"].intake is None and policy.tiers["premium"].intake is None
    calendar = policy.tiers["8/5"].calendar
    assert (calendar.spec.zone, calendar.spec.hours, calendar.spec.country) == (
        "Europe/Moscow", ((600, 1140),), "RU")
    assert policy.escalation.thresholds_pct == [75, 100]
    assert policy.courtesy_notice is True


@pytest.mark.parametrize(("change", "expected"), [
    (('reaction = "15m"', 'reaction = "-15m"'),
     "p.toml:38: tiers.premium.reaction.duration: negative duration '-15m'"),
    (('reaction = "15m"', 'reaction = "soon"'),
     "p.toml:38: tiers.premium.reaction.duration: expected a duration like 15m, 1h, 4h30m or "
     "2d, got 'soon'"),
    (('hours = ["10:00-19:00"]', 'hours = ["10:00-14:00", "13:00-19:00"]'),
     "p.toml:12: calendars.moscow.hours: overlapping windows in ['10:00-14:00', "
     "'13:00-19:00']"),
    (('hours = ["10:00-19:00"]', 'hours = ["19:00-10:00"]'),
     "p.toml:12: calendars.moscow.hours: empty window '19:00-10:00': it must end after it "
     "starts"),
    (('hours = ["10:00-19:00"]', "hours = []"),
     "p.toml:12: calendars.moscow.hours: a working day needs at least one window"),
    (('time_zone = "Europe/Moscow"', 'time_zone = "Europe/Moskva"'),
     "p.toml:10: calendars.moscow.time_zone: unknown time zone 'Europe/Moskva'"),
    (('country = "RU"', 'country = "XX"'),
     "p.toml:11: calendars.moscow.country: unknown country 'XX' (ISO 3166 code the holidays "
     "package knows, e.g. RU)"),
    (('[tiers.premium]\ncalendar = "moscow"', '[tiers.premium]\ncalendar = "paris"'),
     "p.toml:34: tiers.premium.calendar: unknown calendar 'paris'; defined: moscow"),
    (("thresholds_pct = [75, 100]", "thresholds_pct = [100, 75]"),
     "p.toml:49: escalation.thresholds_pct: thresholds must be strictly increasing"),
    (('intake = "working"', 'intake = "office"'),
     "p.toml:18: tiers.8/5.intake: Input should be 'always' or 'working'"),
    (("target_pct = 90\n\n[tiers.\"24/7\"]", "target_pct = 90\nspeed = 1\n\n[tiers.\"24/7\"]"),
     "p.toml:23: tiers.8/5.speed: Extra inputs are not permitted"),
])
def test_bad_policy_names_file_line_and_key(change: tuple[str, str], expected: str) -> None:
    """Each kind of mistake is reported with the file, the line and the key."""
    old, new = change
    assert old in SEED
    with pytest.raises(ConfigError) as error:
        parse_policy(SEED.replace(old, new, 1), "p.toml")
    assert str(error.value) == expected


def test_other_tiers_calendars_and_lunch_breaks(tmp_path: Path) -> None:
    """Admins define their own tier and calendar; customers may then use that tier, and an
    unknown tier in the customers file is an error naming the policy's tiers."""
    path = tmp_path / "policy.toml"
    path.write_text(
        '[calendars.berlin]\ntime_zone = "Europe/Berlin"\ncountry = "DE"\nsubdivision = "BE"\n'
        'hours = ["08:00-12:00", "13:00-17:00"]\n\n'
        '[tiers.gold]\ncalendar = "berlin"\nintake = "working"\nreaction = "30m"\n'
        'resolution = { critical = "2h", high = "4h", medium = "1d working", '
        'low = { duration = "3d", unit = "working" } }\n', encoding="utf-8")
    policy = load_policy(path)
    targets = policy.targets_for("gold", "incident", "low")
    assert targets.resolution.duration == 72 * H and targets.resolution.calendar is not None
    assert policy.targets_for("gold", "incident", "critical").resolution.calendar is None
    customers = tmp_path / "customers.toml"
    customers.write_text('[[customer]]\nid = "a"\ntier = "Gold"\n', encoding="utf-8")
    assert load_customers(customers, tuple(policy.tiers)).get("a").tier == "gold"  # type: ignore[union-attr]
    with pytest.raises(ConfigError) as error:
        load_customers(customers)
    assert str(error.value) == (f"{customers}:3: customer[0].tier: unknown tier 'Gold'; "
                                "expected one of 8/5, 24/7, premium")


def test_reload_keeps_the_previous_policy_when_the_file_is_bad(tmp_path: Path) -> None:
    """A bad file on reload leaves the policy in force and says what is wrong."""
    path = tmp_path / "policy.toml"
    path.write_text(SEED.replace('reaction = "15m"', 'reaction = "10m"'), encoding="utf-8")
    current = load_policy(path)
    path.write_text(SEED.replace('reaction = "15m"', 'reaction = "-1m"'), encoding="utf-8")
    kept, error = reload_policy(current, path)
    assert kept is current
    assert error is not None and "tiers.premium.reaction.duration" in str(error)
    path.write_text(SEED, encoding="utf-8")
    fresh, error = reload_policy(current, path)
    assert error is None
    assert fresh.targets_for("premium", "incident", "high").reaction.duration == 15 * (H / 60)


def test_check_config_reports_policy_problems(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`check-config` validates the policy file the config names and exits 2 on a problem."""
    (tmp_path / "policy.toml").write_text(SEED.replace('country = "RU"', 'country = "ZZ"'),
                                          encoding="utf-8")
    config = tmp_path / "config.toml"
    config.write_text('[files]\npolicy = "policy.toml"\n', encoding="utf-8")
    assert main(["--config", str(config), "check-config"]) == 2
    assert capsys.readouterr().err.startswith(
        f"{tmp_path / 'policy.toml'}:11: calendars.moscow.country: unknown country 'ZZ'")
    config.write_text('[intake]\nunknown_customer_tier = "gold"\n', encoding="utf-8")
    assert main(["--config", str(config), "check-config"]) == 2
    assert "intake.unknown_customer_tier: unknown tier 'gold'" in capsys.readouterr().err
