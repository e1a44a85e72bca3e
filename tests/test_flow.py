"""FlowBrain conversations, driven as text against the real front-desk tools on SQLite.

Every tool call goes through the real registry into a real calendar and CRM on a temporary
database, with a fixed clock so "Thursday afternoon" means the same day on every run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from frontdesk.brain.base import EndCall, Message, TextDelta, ToolCall, ToolResult, TurnContext
from frontdesk.brain.flow import FlowBrain
from frontdesk.brain.profile import AgentProfile, ProfileError, load_profile
from frontdesk.business.calendar import SQLCalendar
from frontdesk.business.crm import SQLCRM
from frontdesk.business.toolset import FrontDeskEnv, frontdesk_tools
from frontdesk.store import CallStore, Database

NY = ZoneInfo("America/New_York")
NOW = datetime(2030, 6, 4, 9, 0, tzinfo=NY)  # a Tuesday, 9 AM
THURSDAY = NOW.date() + timedelta(days=2)
CALLER = "+15551230000"
PROFILE = load_profile()


@dataclass
class Reply:
    """One agent turn as the Call would see it."""

    pieces: list[str]
    end: EndCall | None

    @property
    def text(self) -> str:
        return "".join(self.pieces)


@dataclass
class Desk:
    """One call: the brain, the real tools, and a log of every tool call made."""

    brain: FlowBrain
    env: FrontDeskEnv
    caller_number: str | None
    calls: list[tuple[ToolCall, ToolResult]] = field(default_factory=list)
    history: list[Message] = field(default_factory=list)

    async def run_tool(self, call: ToolCall) -> ToolResult:
        result = await frontdesk_tools().invoke(call, self.env)
        self.calls.append((call, result))
        return result

    async def say(self, text: str, dtmf: str = "") -> Reply:
        self.history.append(Message("caller", text))
        context = TurnContext(
            call_id=self.env.call_id,
            caller_number=self.caller_number,
            history=list(self.history),
            run_tool=self.run_tool,
            dtmf=dtmf,
        )
        pieces: list[str] = []
        end: EndCall | None = None
        async for event in self.brain.respond(text, context):
            if isinstance(event, TextDelta):
                assert end is None, "text after EndCall"
                pieces.append(event.text)
            else:
                end = event
        reply = Reply(pieces, end)
        self.history.append(Message("agent", reply.text))
        return reply

    def named(self, name: str) -> list[ToolCall]:
        return [call for call, _ in self.calls if call.name == name]

    def result(self, name: str) -> ToolResult:
        return next(result for call, result in reversed(self.calls) if call.name == name)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'desk.db'}")
    db.create_all()
    yield db
    db.dispose()


async def open_desk(
    db: Database, caller_number: str | None = CALLER, profile: AgentProfile = PROFILE
) -> Desk:
    hours = profile.business_hours()
    store = CallStore(db)
    call_id = await store.start_call("inbound", "local", caller_number)
    env = FrontDeskEnv(
        calendar=SQLCalendar(db, hours, now=lambda: NOW),
        crm=SQLCRM(db),
        store=store,
        call_id=call_id,
        caller_number=caller_number,
        hours=hours,
        handoff_number=profile.handoff_number,
        now=lambda: NOW,
    )
    brain = FlowBrain(profile, now=lambda: NOW)
    return Desk(brain, env, caller_number, history=[Message("agent", brain.greeting())])


def offered(desk: Desk) -> list[dict[str, Any]]:
    return desk.result("check_availability").data["slots"]


def asked(reply: Reply, *phrases: str) -> bool:
    return any(p in reply.text.lower() for p in phrases)


async def test_happy_path_books_thursday_afternoon(database: Database) -> None:
    desk = await open_desk(database)
    assert "Bright Smile Dental" in desk.brain.greeting()
    reply = await desk.say("Hi, I'd like to book an appointment")
    assert asked(reply, "new patient")
    reply = await desk.say("I'm a new patient")
    assert asked(reply, "reason for your visit")
    reply = await desk.say("a cleaning please")
    assert asked(reply, "name")
    assert desk.brain.expecting() == "name"
    reply = await desk.say("maria lopez")
    assert asked(reply, "what day")
    assert desk.brain.expecting() == "date"
    reply = await desk.say("thursday afternoon")
    [check] = desk.named("check_availability")
    assert check.arguments["day"] == THURSDAY.isoformat()
    assert check.arguments["part_of_day"] == "afternoon"
    slots = offered(desk)
    assert slots and all(s["label"] in reply.text for s in slots)
    assert len(reply.pieces) > 1  # spoken clause by clause
    reply = await desk.say("the first one")
    [book] = desk.named("book_appointment")
    start = datetime.fromisoformat(book.arguments["start"])
    assert book.arguments["start"] == slots[0]["start"]
    assert start.date() == THURSDAY and 12 <= start.astimezone(NY).hour < 17
    assert book.arguments["name"] == "Maria Lopez"
    assert book.arguments["service"] == "Cleaning"
    assert slots[0]["label"] in reply.text and reply.end is None
    [logged] = desk.named("log_call_outcome")
    assert logged.arguments["outcome"] == "booked"
    assert "Maria Lopez" in logged.arguments["summary"]
    reply = await desk.say("no that's all, thanks")
    assert desk.named("end_call") and reply.end == EndCall("completed")
    [booking] = await desk.env.calendar.bookings(call_id=desk.env.call_id)
    assert booking.start == start and booking.service == "Cleaning"
    contact = await desk.env.crm.find_contact(CALLER)
    assert contact is not None and contact.name == "Maria Lopez"


async def test_information_given_out_of_order_is_not_asked_again(database: Database) -> None:
    desk = await open_desk(database)
    first = await desk.say(
        "hi this is maria lopez i'd like to book a cleaning for thursday afternoon"
    )
    assert asked(first, "new patient")
    reply = await desk.say("first time")
    # straight to real openings: no "what's your name", no "which day", no "reason"
    for text in (first.text, reply.text):
        assert "name" not in text.lower() and "what day" not in text.lower()
        assert "reason" not in text.lower()
    [check] = desk.named("check_availability")
    assert check.arguments == {
        "day": THURSDAY.isoformat(),
        "part_of_day": "afternoon",
        "limit": 3,
        "service": "Cleaning",  # a cleaning is longer than the default visit
    }
    second = offered(desk)[1]
    await desk.say(second["label"].split(" at ")[1].lower().replace(" pm", ""))  # e.g. "2"
    [book] = desk.named("book_appointment")
    assert book.arguments["start"] == second["start"]
    assert book.arguments["name"] == "Maria Lopez"


async def test_faq_mid_flow_is_answered_from_the_profile_and_the_flow_resumes(
    database: Database,
) -> None:
    desk = await open_desk(database)
    await desk.say("I want to book a checkup")
    reply = await desk.say("do you take Delta Dental?")
    insurance = next(f for f in PROFILE.faq if "insurance" in f.question.lower())
    assert insurance.answer in reply.text
    assert asked(reply, "new patient")  # back to the question it was on
    assert not desk.named("transfer_to_human")
    await desk.say("I've been there before")
    await desk.say("Dana Smith")
    reply = await desk.say("friday morning")
    assert desk.named("check_availability")[0].arguments["part_of_day"] == "morning"
    await desk.say("the last one")
    [book] = desk.named("book_appointment")
    assert book.arguments["start"] == offered(desk)[-1]["start"]
    assert book.arguments["service"] == "Checkup"


@pytest.mark.parametrize("question", ["What's my insurance deductible?", "Can you fix my car?"])
async def test_out_of_scope_question_gets_a_person_not_a_guess(
    database: Database, question: str
) -> None:
    desk = await open_desk(database)
    reply = await desk.say(question)
    [transfer] = desk.named("transfer_to_human")
    assert transfer.arguments["reason"]
    assert asked(reply, "person")
    assert asked(reply, "don't have that information")
    # nothing that sounds like an answer: no amounts, no plan names, no yes
    assert not any(ch.isdigit() for ch in reply.text)
    assert "Delta" not in reply.text and not reply.text.lower().startswith("yes")
    [logged] = desk.named("log_call_outcome")
    assert logged.arguments["outcome"] == "escalated"
    record = await desk.env.store.call_record(desk.env.call_id)
    assert record["outcome"] == "escalated"


async def test_out_of_scope_question_while_choosing_a_time(database: Database) -> None:
    desk = await open_desk(database)
    await desk.say("this is john smith, i'm an existing patient and need a cleaning tomorrow")
    assert desk.named("check_availability")
    reply = await desk.say("can you recommend a good orthodontist?")
    assert desk.named("transfer_to_human") and asked(reply, "person")
    assert not desk.named("book_appointment")


async def test_not_interested_is_nurture_and_a_polite_goodbye(database: Database) -> None:
    desk = await open_desk(database)
    await desk.say("I need a checkup")
    reply = await desk.say("actually I'm not interested anymore")
    [logged] = desk.named("log_call_outcome")
    assert logged.arguments["outcome"] == "nurture"
    assert desk.named("end_call") and reply.end is not None
    assert asked(reply, "thanks for calling")
    assert not desk.named("book_appointment")


@pytest.mark.parametrize(
    ("turn", "dtmf"), [("", "0"), ("can I talk to a real person", ""), ("operator", "")]
)
async def test_caller_gets_a_person_on_request(database: Database, turn: str, dtmf: str) -> None:
    desk = await open_desk(database)
    await desk.say("I'd like to book a cleaning")
    reply = await desk.say(turn, dtmf=dtmf)
    assert desk.named("transfer_to_human")
    assert PROFILE.render(PROFILE.lines.handoff) in reply.text
    assert desk.env.actions and desk.env.actions[0].number == PROFILE.handoff_number
    assert desk.named("log_call_outcome")[0].arguments["outcome"] == "escalated"


async def test_taken_slot_gets_an_apology_and_new_times(database: Database) -> None:
    desk = await open_desk(database)
    await desk.say("hi it's ann lee, existing patient, i need a cleaning thursday afternoon")
    first = offered(desk)[0]
    # Someone else books that time while the caller is deciding.
    await desk.env.calendar.book(
        datetime.fromisoformat(first["start"]),
        timedelta(minutes=30),
        contact_id=None,
        call_id=None,
        service=None,
        idempotency_key=None,
    )
    reply = await desk.say("the first one")
    assert not desk.result("book_appointment").ok
    assert asked(reply, "sorry") and asked(reply, "taken")
    new_slots = offered(desk)
    assert len(desk.named("check_availability")) == 2
    assert new_slots and first["start"] not in [s["start"] for s in new_slots]
    assert new_slots[0]["label"] in reply.text
    await desk.say("the first one")
    assert desk.result("book_appointment").ok
    assert desk.named("book_appointment")[-1].arguments["start"] == new_slots[0]["start"]


async def test_unclear_answers_reprompt_then_offer_a_person(database: Database) -> None:
    desk = await open_desk(database)
    question = await desk.say("book an appointment")
    first = await desk.say("purple monkey dishwasher")
    assert first.text != question.text and asked(first, "first visit")  # reworded
    second = await desk.say("banana")
    assert asked(second, "person") and desk.brain.expecting() == "yes_no"
    assert not desk.named("transfer_to_human")  # offered, not forced
    await desk.say("yes please")
    assert desk.named("transfer_to_human")


async def test_returning_caller_is_not_asked_what_the_crm_knows(database: Database) -> None:
    await SQLCRM(database).upsert_contact(CALLER, name="Maria Lopez")
    desk = await open_desk(database)
    reply = await desk.say("I'd like to book a whitening")
    assert desk.named("lookup_contact")
    assert "new patient" not in reply.text.lower() and "name" not in reply.text.lower()
    assert asked(reply, "what day")


async def test_caller_without_a_number_is_asked_for_one(database: Database) -> None:
    desk = await open_desk(database, caller_number=None)
    await desk.say("I'd like a checkup, I'm a new patient, my name is Dana Smith")
    assert desk.brain.expecting() == "phone"
    reply = await desk.say("five five five, one two three, four five six seven")
    assert asked(reply, "what day")
    await desk.say("tomorrow at 10")
    reply = await desk.say("yes")
    [book] = desk.named("book_appointment")
    assert book.arguments["phone"] == "5551234567"
    assert datetime.fromisoformat(book.arguments["start"]).astimezone(NY).hour == 10
    assert desk.result("book_appointment").ok and asked(reply, "all set")


async def test_interrupted_offer_yes_means_the_time_the_caller_heard(database: Database) -> None:
    desk = await open_desk(database)
    await desk.say("my name is kim lee, new patient, cleaning on friday please")
    slots = offered(desk)
    assert len(slots) > 1
    # The caller cut in after hearing only the first time.
    heard = f"I have {slots[0]['label']}"
    desk.history[-1] = Message("agent", heard, interrupted=True)
    await desk.say("yes")
    assert desk.named("book_appointment")[0].arguments["start"] == slots[0]["start"]


async def test_emergency_goes_to_a_person(database: Database) -> None:
    desk = await open_desk(database)
    reply = await desk.say("my face is swollen and I'm in severe pain")
    assert desk.named("transfer_to_human")
    assert "urgent" in desk.named("transfer_to_human")[0].arguments["reason"]
    assert asked(reply, "urgent")


async def test_service_not_offered_is_nurture(database: Database) -> None:
    desk = await open_desk(database)
    reply = await desk.say("I want to get braces")
    assert asked(reply, "don't offer braces")
    reply = await desk.say("no thanks")
    assert desk.named("log_call_outcome")[0].arguments["outcome"] == "nurture"
    assert reply.end is not None


async def test_no_one_to_transfer_to_promises_a_call_back(database: Database) -> None:
    profile = PROFILE.model_copy(update={"handoff_number": None})
    desk = await open_desk(database, profile=profile)
    reply = await desk.say("let me speak to a person")
    assert desk.named("transfer_to_human") and asked(reply, "call you back")
    assert reply.end is not None and desk.named("end_call")


def test_default_profile_is_a_small_dental_practice() -> None:
    assert PROFILE.agent_name == "Sam" and PROFILE.business_name == "Bright Smile Dental"
    assert {s.name for s in PROFILE.services} >= {"Cleaning", "Checkup", "Whitening"}
    hours = PROFILE.business_hours()
    assert hours.open_on(NOW.date()) and not hours.open_on(NOW.date() + timedelta(days=5))
    assert "Saturday, 9 AM to noon" in PROFILE.describe_hours()
    assert 2 <= len(PROFILE.qualifying_questions) <= 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("agent_name: Sam\n", "business_name"),
        ("[1, 2]\n", "expected a mapping"),
        ("agent_name: [unclosed\n", "not valid YAML"),
        ("timezone: Mars/Olympus\n", "unknown time zone"),
        ("hours: {mon: '9am till 5'}\n", "hours"),
        ("hours: {funday: '09:00-17:00'}\n", "funday"),
        ("services: []\n", "services"),
        ("qualifying_questions: [{id: q, question: 'Which?', expects: choice}]\n", "no choices"),
    ],
)
def test_bad_profile_names_the_problem(tmp_path: Path, content: str, message: str) -> None:
    good = Path(__file__).parents[1] / "src/frontdesk/profiles/default.yaml"
    path = tmp_path / "profile.yaml"
    if content.startswith(("agent_name: Sam", "[", "agent_name: [")):
        path.write_text(content)
    else:
        path.write_text(good.read_text() + "\n" + content)  # a later key overrides
    with pytest.raises(ProfileError) as error:
        load_profile(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.yaml")


async def test_barge_in_on_the_hand_off_line_keeps_the_call_with_the_agent(
    database: Database,
) -> None:
    desk = await open_desk(database)
    context = TurnContext(desk.env.call_id, CALLER, list(desk.history), desk.run_tool)
    reply = desk.brain.respond("can I talk to a person", context)
    assert isinstance(await anext(reply), TextDelta)
    await reply.aclose()  # the caller talked over the hand-off line: the reply is discarded
    assert not desk.named("transfer_to_human")
    answer = await desk.say("actually no, I just want to book a cleaning")
    assert asked(answer, "new patient")


async def test_recogniser_noise_lowercase_and_homophones(database: Database) -> None:
    desk = await open_desk(database)
    await desk.say("uh yeah hi um i need a cleaning")
    await desk.say("first time")
    await desk.say("its dana smith")
    reply = await desk.say("tomorrow at to thirty")
    assert "2:30 PM" in reply.text and "12 PM" not in reply.text  # the time asked for, alone
    await desk.say("yeah that works")
    [book] = desk.named("book_appointment")
    start = datetime.fromisoformat(book.arguments["start"]).astimezone(NY)
    assert (start.date(), start.hour, start.minute) == (NOW.date() + timedelta(days=1), 14, 30)
    assert book.arguments["name"] == "Dana Smith"


async def test_a_goodbye_that_sounds_like_a_question_ends_the_call(database: Database) -> None:
    """Whisper hears "No, that's all, thank you." on a noisy line as "..., can you?"."""
    desk = await open_desk(database)
    await desk.say("do you have parking?")
    goodbye = await desk.say("No, that's all, can you?")
    assert goodbye.end == EndCall("completed")
    assert not desk.named("transfer_to_human")


async def test_caller_who_cuts_off_the_goodbye_is_still_heard(database: Database) -> None:
    desk = await open_desk(database)
    await desk.say("do you have parking?")
    goodbye = await desk.say("no that's all")
    assert goodbye.end is not None
    # The Call dropped the hang-up because the caller talked over the goodbye.
    desk.history[-1] = Message("agent", goodbye.text[:10], interrupted=True)
    reply = await desk.say("wait, where are you located?")
    located = next(f for f in PROFILE.faq if "located" in f.question)
    assert located.answer in reply.text and reply.end is None
    # The outcome logged with the dropped goodbye was dropped too: the next goodbye logs the
    # call as it now stands.
    goodbye = await desk.say("no, that's everything")
    assert goodbye.end is not None
    first, second = desk.named("log_call_outcome")
    assert "located" not in first.arguments["summary"]
    assert "located" in second.arguments["summary"]


async def test_a_hand_off_cut_short_before_a_word_was_heard_is_not_dead_air(
    database: Database,
) -> None:
    desk = await open_desk(database)
    await desk.say("what's my insurance deductible?")
    assert desk.named("transfer_to_human")
    # The caller carried on before hearing any of the hand-off: the Call dropped it, and
    # the history holds nothing of it.
    desk.history.pop()
    reply = await desk.say("actually, I just want to book a cleaning")
    assert reply.text and reply.end is None
    assert asked(reply, "new patient")
