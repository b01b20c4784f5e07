"""The phone's policy as one table: what each panel input and call event does in each state.

``TRANSITIONS`` is read at once by a person, drawn by ``piphone diagram`` (diagram.py) and run
by the Phone (phone.py), whose methods are the conditions and actions the rows name.
"""

from __future__ import annotations

from typing import Any

from .display import STATES

__all__ = ["ACTIVE", "HOLDING", "NOT_IDLE", "PANEL_TRIGGERS", "STATES", "TRANSITIONS",
           "machine_rows"]

ACTIVE = ["calling", "talking", "reconnecting"]  # a call of ours is up or on its way
# the phone's call is on hold (recall: it rings back; transfer: a number is keyed for it)
HOLDING = ["held", "recall", "transfer"]
UP = [*ACTIVE, *HOLDING]
NOT_IDLE = ["dialing", "ringing", *UP]
# With call waiting a second call is on hold while the phone talks on another ("has_held"):
# hanging up the active one offers the held one (held; recall if the handset is down).

# trigger,          source,           dest,          conditions,              action
# (dest None: the state stays; "unless:" negates a condition; rows are tried in order)
TRANSITIONS: list[tuple[str, str | list[str], str | None, list[str], str | list[str] | None]] = [
    # the handset
    ("off_hook",      "idle",           "dialing",     [],                      "start_dialing"),
    ("off_hook",      "ringing",        "talking",     [],                      "answer"),
    ("off_hook",      "recall",         "talking",     [],                      "take_back"),
    ("off_hook",      ["dialing", *ACTIVE, "held"], None, ["handsfree"],        "use_headset"),
    ("off_hook",      "held",           None,          [],                      None),
    ("on_hook",       ["dialing", *ACTIVE], None,      ["handsfree"],           None),
    ("on_hook",       "held",           None,          [],                      None),
    ("on_hook",       "dialing",        "idle",        [],                      None),
    ("on_hook",       ACTIVE,           "recall",      ["has_held"],
     ["hang_up", "offer_held"]),
    ("on_hook",       ACTIVE,           "ringing",     ["has_waiting"],
     ["hang_up", "ring_waiting"]),
    ("on_hook",       ACTIVE,           "idle",        [],                      "hang_up"),
    # buttons
    ("press_accept",  "ringing",        "talking",     [],                      "answer"),
    ("press_accept",  ["talking", "held"], "talking",  ["has_waiting"],         "accept_waiting"),
    ("press_accept",  "recall",         "talking",     [],                      "take_back"),
    ("press_reject",  "ringing",        "idle",        [],                      "reject"),
    ("press_reject",  ["talking", "held"], None,       ["has_waiting"],         "reject_waiting"),
    ("press_reject",  ACTIVE,           "held",        ["has_held", "hook_lifted"],
     ["hang_up", "offer_held"]),
    ("press_reject",  ACTIVE,           "recall",      ["has_held"],  ["hang_up", "offer_held"]),
    ("press_reject",  UP,               "dialing",     ["hook_lifted"],         "hang_up"),
    ("press_reject",  UP,               "idle",        [],                      "hang_up"),
    ("press_ignore",  "ringing",        "idle",        [],                      "ignore"),
    ("press_ignore",  ["talking", "held"], None,       ["has_waiting"],         "ignore_waiting"),
    # hold and swap (piphone's Call.hold: the far end hears hold music; nothing is played)
    ("press_hold",    "talking",        "held",        ["unless:has_held"],     "put_on_hold"),
    ("press_hold",    HOLDING,          "talking",     [],                      "take_back"),
    ("press_swap",    "talking",        None,          ["has_held"],            "swap_calls"),
    # transfer (transfers.py): TRANSFER, a number, '#' hands the call on (blind); TRANSFER
    # instead of '#' calls the number first (attended); TRANSFER with a call held joins them
    ("press_transfer", "talking",       None,          ["has_held", "can_transfer"],
     "complete_transfer"),
    ("press_transfer", "talking",       "transfer",    ["can_transfer"],        "start_transfer"),
    ("press_transfer", "transfer",      "calling",     ["has_digits"],          "consult"),
    ("press_transfer", "transfer",      "talking",     [],                      "take_back"),
    ("key",           "transfer",       None,          [],            "collect_transfer_digit"),
    ("dial",          "transfer",       None,          ["has_digits"],          "blind_transfer"),
    ("transfer_to",   "talking",        "calling",
     ["can_transfer", "attended", "unless:has_held"],                           "consult"),
    ("transfer_to",   ["talking", "transfer"], None,   ["can_transfer", "unless:attended"],
     "blind_transfer"),
    # CONFERENCE with a call held: the three talk together (the local exchange mixes)
    ("press_conference", "talking",     None,          ["has_held", "can_conference"],
     "join_conference"),
    ("press_mute",    ["talking", "reconnecting"], None, [],                    "toggle_mute"),
    ("press_redial",  ["idle", "dialing"], "calling",  ["has_last_number"],     "redial"),
    ("press_dnd",     "*",              None,          [],                      "toggle_dnd"),
    # the speaker button: the call (or dialing) moves between headset and handsfree device
    ("press_speaker", "idle",           "dialing",     ["has_speaker"],
     ["use_speaker", "start_dialing"]),
    ("press_speaker", "ringing",        "talking",     ["has_speaker"], ["use_speaker", "answer"]),
    ("press_speaker", "dialing",        "idle",        ["handsfree", "unless:hook_lifted"], None),
    ("press_speaker", ["dialing", *ACTIVE], None,      ["handsfree"],           "use_headset"),
    ("press_speaker", ["dialing", *ACTIVE], None,      ["has_speaker"],         "use_speaker"),
    ("press_speed",   ["idle", "dialing"], "calling",  ["has_speed_number"],    "speed_dial"),
    ("press_missed",  "dialing",        "calling",     ["has_last_caller"],     "call_back"),
    ("press_missed",  ["idle", "dialing"], None,       [],                      "mark_seen"),
    ("seen",          "*",              None,          [],                      "mark_seen"),
    ("volume_up",     ["idle", "ringing"], None,       [],                      "ringer_louder"),
    ("volume_down",   ["idle", "ringing"], None,       [],                      "ringer_softer"),
    ("volume_up",     "*",              None,          [],                      "louder"),
    ("volume_down",   "*",              None,          [],                      "softer"),
    ("key",           "dialing",        None,          [],                      "collect_digit"),
    ("key",           "talking",        None,          [],                      "send_digit"),
    ("dial",          "dialing",        "calling",     ["has_digits"],          "dial_digits"),
    ("place_call",    ["idle", "dialing"], "calling",  [],                      "dial_number"),
    # the calls a previous run kept (kept_call.py): resumed at start, open again -> talking
    # (or held, if it was on hold); a second one that was on hold comes back on hold
    ("resume_call",   ["idle", "dialing"], "reconnecting", [],                  "resume"),
    ("resume_held",   "*",              None,          [],                      "resume_held"),
    ("held_back",     ["idle", "dialing"], "held",     ["hook_lifted"],         None),
    ("held_back",     ["idle", "dialing"], "recall",   [],                      None),
    # voicemail (voicemail.py): the messages play in the handset, newest first; the key again
    # or # skips, 7 deletes the one playing; hanging up or REJECT stops
    ("press_voicemail", ["idle", "dialing"], "voicemail", ["has_messages"],     "play_messages"),
    ("press_voicemail", "voicemail",    None,          [],                      "next_message"),
    ("key",           "voicemail",      None,          [],                      "message_key"),
    ("off_hook",      "voicemail",      None,          [],                      None),
    ("on_hook",       "voicemail",      "idle",        [],                      "stop_messages"),
    ("press_reject",  "voicemail",      "dialing",     ["hook_lifted"],         "stop_messages"),
    ("press_reject",  "voicemail",      "idle",        [],                      "stop_messages"),
    ("messages_done", "voicemail",      "dialing",     ["hook_lifted"],         None),
    ("messages_done", "voicemail",      "idle",        [],                      None),
    ("incoming",      "voicemail",      None,          [],                      "refuse_busy"),
    # calls
    ("incoming",      "idle",           None,          ["dnd"],                 "refuse_dnd"),
    ("incoming",      "idle",           "ringing",     [],                      "take_incoming"),
    ("incoming",      ["talking", "held"], None,
     ["call_waiting", "unless:has_waiting", "unless:has_held"],                 "let_wait"),
    ("incoming",      NOT_IDLE,         None,          [],                      "refuse_busy"),
    ("ring",          "ringing",        "talking",     ["auto_answer_due"],     "answer"),
    ("ring",          "ringing",        None,          [],                      None),
    ("answered",      "calling",        "talking",     [],                      None),
    ("answered",      "talking",        None,          [],                      None),
    ("answered",      "reconnecting",   "held",        ["on_hold"],             None),
    ("answered",      "reconnecting",   "talking",     [],                      None),
    ("ended",         "ringing",        "idle",        [],                      "forget_call"),
    ("ended",         ACTIVE,           "held",        ["has_held", "hook_lifted"], "offer_held"),
    ("ended",         ACTIVE,           "recall",      ["has_held"],            "offer_held"),
    ("ended",         UP,               "ringing",     ["has_waiting"],         "ring_waiting"),
    ("ended",         UP,               "dialing",     ["hook_lifted"],
     ["forget_call", "use_headset"]),
    ("ended",         UP,               "idle",        [],                      "forget_call"),
    ("waiting_ended", "*",              None,          [],                      "forget_waiting"),
    ("held_ended",    "*",              None,          [],                      "forget_held"),
    ("reconnecting",  ["calling", "talking"], "reconnecting", [],               None),
    ("reconnected",   "reconnecting",   "talking",     [],                      None),
    ("warning",       ACTIVE,           None,          [],                      "add_warning"),
    ("warning_cleared", ACTIVE,         None,          [],                      "clear_warning"),
    ("failed",        "*",              None,          [],                      "note_error"),
]

# Panel events by member name (the agreed PanelEvent names) -> trigger.
PANEL_TRIGGERS = {
    "OFF_HOOK": "off_hook", "ON_HOOK": "on_hook", "ACCEPT": "press_accept",
    "REJECT": "press_reject", "IGNORE": "press_ignore", "MUTE": "press_mute",
    "VOLUME_UP": "volume_up", "VOLUME_DOWN": "volume_down", "REDIAL": "press_redial",
    "DND": "press_dnd", "DIGIT": "key", "SPEAKER": "press_speaker", "MISSED": "press_missed",
    "SPEED": "press_speed", "HOLD": "press_hold", "SWAP": "press_swap",
    "TRANSFER": "press_transfer", "CONFERENCE": "press_conference", "VOICEMAIL": "press_voicemail",
}


def machine_rows() -> list[dict[str, Any]]:
    """TRANSITIONS as transitions' dicts (shared by the phone and the diagram)."""
    rows: list[dict[str, Any]] = []
    for trigger, source, dest, conditions, action in TRANSITIONS:
        row: dict[str, Any] = {"trigger": trigger, "source": source, "dest": dest,
                               "conditions": [c for c in conditions if not c.startswith("unless:")],
                               "unless": [c[7:] for c in conditions if c.startswith("unless:")]}
        if action:
            row["before"] = action
        rows.append(row)
    return rows
