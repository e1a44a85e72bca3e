"""`frontdesk demo --json`: the whole product on the embedded default, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, text


def test_demo_books_one_appointment_and_writes_the_crm(tmp_path: Path) -> None:
    database = tmp_path / "demo.db"
    env = {
        **os.environ,
        "FRONTDESK_DATABASE_URL": f"sqlite:///{database}",
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "frontdesk", "demo", "--json", "--recording-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout)

    assert record["outcome"] == "booked"
    assert len(record["appointments"]) == 1
    assert record["contact"]["name"] == "Maria Lopez"
    assert record["contact"]["last_outcome"] == "booked"
    speakers = {t["speaker"] for t in record["turns"]}
    assert speakers == {"agent", "caller"}
    assert any(t["interrupted"] for t in record["turns"]), "the caller barged in once"
    timed = [t["timings"] for t in record["turns"] if t["speaker"] == "caller"]
    assert all(t.get("voice_to_voice_ms") for t in timed[:-1]), timed
    assert Path(record["recording_path"]).is_file()

    # Read back from the database itself, not from the agent's word.
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as db:
        assert db.execute(text("select count(*) from appointments")).scalar() == 1
        outcome, transcript = db.execute(
            text(
                "select c.last_outcome, count(t.id) from contacts c "
                "join calls k on k.contact_id = c.id join turns t on t.call_id = k.id "
                "group by c.id"
            )
        ).one()
    assert outcome == "booked" and transcript >= 10
