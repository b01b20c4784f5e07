"""[contacts] in piphone.toml: names for numbers and speed dial; errors name key and line."""

from __future__ import annotations

import pytest

from piphone.appliance import config
from piphone.appliance.contacts import Contact, Contacts
from piphone.errors import ConfigError

from .test_appliance_config import GOOD, write

CONTACTS = """
[contacts]
Bob = "client:bob"
"Alice Smith" = { number = "+1 555-123-4567", speed = 1 }
Reception = { number = "100", speed = 9 }
"""
FIRST = GOOD.count("\n") + 3  # the line of Bob


def test_contacts_load_with_names_numbers_and_speed_keys(tmp_path):
    cfg = config.load(write(tmp_path, GOOD + CONTACTS))
    assert list(cfg.contacts) == [Contact("Bob", "client:bob"),
                                  Contact("Alice Smith", "+15551234567", 1),
                                  Contact("Reception", "100", 9)]
    assert cfg.contacts.speed_dial() == {"1": "+15551234567", "9": "100"}
    assert config.load(write(tmp_path, GOOD)).contacts == Contacts()


@pytest.mark.parametrize("number, name", [
    ("client:bob", "Bob"), ("bob", "Bob"), ("CLIENT:Bob", "Bob"),
    ("+15551234567", "Alice Smith"), ("+1 (555) 123-4567", "Alice Smith"),
    ("100", "Reception"), ("101", None), (None, None), ("", None)])
def test_names_by_number(tmp_path, number, name):
    contacts = config.load(write(tmp_path, GOOD + CONTACTS)).contacts
    assert contacts.name_of(number) == name
    assert contacts.labelled(number) == (f"{name} ({number})" if name else number)


@pytest.mark.parametrize("entry, key, says", [
    ('Dave = 5', "Dave", "must be a number"),
    ('Dave = { number = "1", speed = 10 }', "Dave", "speed must be a speed-dial key 1-9"),
    ('Dave = { number = "1", speed = true }', "Dave", "speed must be a speed-dial key 1-9"),
    ('Dave = { number = "1", ring = 2 }', "Dave", "unknown key 'ring'"),
    ('Dave = { speed = 2 }', "Dave", "number must be"),
    ('Dave = "not a number!"', "Dave", "number must be"),
    ('"" = "100"', "", "name must be 1-40"),
    ('"' + "x" * 41 + '" = "100"', "x" * 41, "name must be 1-40"),
    ('Carol = { number = "200", speed = 1 }', "Carol", "speed 1 is also 'Alice Smith''s key"),
    ('Carol = "client:BOB"', "Carol", "number client:BOB is also 'Bob''s"),
])
def test_a_bad_contact_names_its_key_and_line(tmp_path, entry, key, says):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, GOOD + CONTACTS + entry + "\n"))
    message = str(info.value)
    name = f"contacts.{key}" if key else "contacts"  # an empty name: the section
    assert f"line {FIRST + 3}: {name}: " in message and says in message, message
