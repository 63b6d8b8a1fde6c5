"""The certification's chat stress test in the certifier's own tool: Locust.

Replays what `edgeseo stress` does with the same messages and thresholds: every simulated buyer
posts a labelled message to the chat endpoint, in turn through the set, and each answer is checked
for its intent and its time. At the end the run fails (exit code 1) when the intent accuracy is
under 92 %, the average latency over 1.2 s, any answer slower than 3 s, or any request failed.

    pip install locust
    edgeseo demo &
    locust -f benches/locustfile.py --headless --host http://127.0.0.1:8080 \\
        --users 500 --spawn-rate 100 --run-time 60s

The users pace themselves to one message a second each (`constant_throughput(1)`), so the rate is
the number of users: 500 users make the certification's 500 requests per second, if the machine
running Locust can (run it with `--processes -1` on several cores). The messages are the blind set
(`tests/data/chat/blind/*.csv`, text,intent,lang), or the file named by EDGESEO_SET.
"""

import csv
import glob
import itertools
import os
import threading

from locust import FastHttpUser, constant_throughput, events, task

CHAT_PATH = os.environ.get("EDGESEO_CHAT_PATH", "/api/chat")
MIN_INTENT_ACCURACY = 0.92
MAX_AVERAGE_MS = 1200
MAX_ANSWER_MS = 3000


def load_messages():
    here = os.path.dirname(os.path.abspath(__file__))
    named = os.environ.get("EDGESEO_SET")
    files = [named] if named else sorted(glob.glob(os.path.join(here, "..", "tests", "data", "chat", "blind", "*.csv")))
    per_file = []
    for name in files:
        with open(name, encoding="utf-8", newline="") as f:
            per_file.append(list(csv.DictReader(f)))
    # Interleaved, so that any stretch of the run mixes the languages.
    rows = [row for group in itertools.zip_longest(*per_file) for row in group if row]
    if not rows:
        raise SystemExit(f"no messages in {files}")
    return rows


MESSAGES = load_messages()
_next = itertools.cycle(range(len(MESSAGES)))
_lock = threading.Lock()
# Per language: [answered, intent right, language right].
TALLY = {}


class Buyer(FastHttpUser):
    wait_time = constant_throughput(1)

    @task
    def ask(self):
        with _lock:
            row = MESSAGES[next(_next)]
        with self.client.post(
            CHAT_PATH,
            json={"message": row["text"]},
            name=CHAT_PATH,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"status {resp.status_code}")
                return
            try:
                answer = resp.json()
            except ValueError:
                resp.failure("not JSON")
                return
            if resp.request_meta["response_time"] > MAX_ANSWER_MS:
                resp.failure(f"answered after {MAX_ANSWER_MS} ms")
                return
            with _lock:
                tally = TALLY.setdefault(row["lang"], [0, 0, 0])
                tally[0] += 1
                tally[1] += answer.get("intent") == row["intent"]
                tally[2] += answer.get("language") == row["lang"]
            resp.success()


@events.quitting.add_listener
def verdict(environment, **_kwargs):
    stats = environment.stats.total
    answered = sum(t[0] for t in TALLY.values())
    intent = sum(t[1] for t in TALLY.values()) / answered if answered else 0.0
    for lang, (n, right, lang_right) in sorted(TALLY.items()):
        print(f"{lang}: intent {100 * right / n:.1f} %, language {100 * lang_right / n:.1f} % ({n} answered)")
    print(
        f"all: {stats.num_requests} requests, {stats.num_failures} failed, "
        f"{stats.total_rps:.1f} req/s, average {stats.avg_response_time:.1f} ms, "
        f"max {stats.max_response_time:.0f} ms, intent {100 * intent:.1f} %"
    )
    failed = []
    if stats.num_requests == 0:
        failed.append("no request answered")
    if stats.num_failures:
        failed.append(f"{stats.num_failures} requests failed")
    if stats.avg_response_time > MAX_AVERAGE_MS:
        failed.append(f"average latency {stats.avg_response_time:.0f} ms > {MAX_AVERAGE_MS} ms")
    if intent < MIN_INTENT_ACCURACY:
        failed.append(f"intent accuracy {100 * intent:.1f} % < {100 * MIN_INTENT_ACCURACY:.0f} %")
    if failed:
        print("FAIL: " + "; ".join(failed))
        environment.process_exit_code = 1
    else:
        print("pass: every criterion the run can judge")
        environment.process_exit_code = 0
