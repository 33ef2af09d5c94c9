"""`make test`'s check of the peer benchmark: the harness at a tiny scale.

Every system must hold the same data every night — the same answers to
the fixed queries, the same diff and the same history — or the numbers
`make bench-peers` prints would compare different things.

    python bench/test_peers.py --udr-driver .build/debug/udr-bench
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import peers  # noqa: E402

DRIVER = ""
WEED = ""


class PeerHarnessTest(unittest.TestCase):
    measured: dict = {}

    @classmethod
    def setUpClass(cls):
        args = peers.parser().parse_args(
            ["--scale", "0.002", "--nights", "4", "--column-every", "2", "--repeat", "1", "--udr-driver", DRIVER, "--no-report"]
            + (["--weed", WEED] if WEED else [])
        )
        cls.measured = peers.run(args)
        cls.variants = {v["variant"]: v for v in cls.measured["variants"]}

    def test_every_system_answers_alike_every_night(self):
        for name, variant in self.variants.items():
            self.assertEqual(len(variant["systems"]), 8, name)
            self.assertEqual(variant["disagreements"], [], f"{name}: systems disagree")

    def test_the_answers_follow_the_nights(self):
        # The agreement above would be empty if the data did not move: each
        # variant changes the aggregate or the join from night 1 to the last.
        for name, variant in self.variants.items():
            nights = variant["nights"]
            self.assertEqual([n["night"] for n in nights], [1, 2, 3, 4], name)
            answers = variant["answers"]
            self.assertEqual(len(answers["lookup"][0]), 1, f"{name}: the probed parcel is found")
            moved = [q for q, per_night in answers.items() if per_night[0] != per_night[-1]]
            self.assertTrue(moved, f"{name}: no query's answer changed from night 1 to the last")
        mixed = self.variants["mixed"]
        self.assertIn("queries", mixed)
        for system, timings in mixed["queries"].items():
            self.assertEqual(len(timings), 6, system)  # 3 queries × latest and night 1

    def test_storage_and_sync_are_counted(self):
        for name, variant in self.variants.items():
            first, last = variant["nights"][0], variant["nights"][-1]
            for system, m in first["systems"].items():
                self.assertGreater(m["bytes"], 0, f"{name}/{system}")
                self.assertEqual(m["sync_bytes"], m["bytes"], f"{name}/{system}: night 1 uploads everything")
            for system, m in last["systems"].items():
                self.assertGreaterEqual(m["bytes"], first["systems"][system]["bytes"], f"{name}/{system}: history is kept")
                self.assertLess(m["sync_bytes"], m["bytes"], f"{name}/{system}: a later night uploads part")
            copies = last["systems"]["parquet-copies"]
            self.assertEqual(copies["sync_bytes"], last["full_copy_bytes"], "Parquet copies upload a full copy a night")

    def test_udr_pushes_each_night_to_a_real_s3_server(self):
        if not WEED:
            self.skipTest("no --weed given")
        for name, variant in self.variants.items():
            nights = [n["systems"]["udr"] for n in variant["nights"]]
            for i, m in enumerate(nights, 1):
                self.assertGreater(m["pushed_bytes"], 0, f"{name}: night {i} pushed nothing")
            # After the first night, a push sends the night's new objects, not the repository.
            for m in nights[1:]:
                self.assertLess(m["pushed_bytes"], nights[0]["pushed_bytes"], f"{name}: a later push resent the repository")
            clones = variant.get("clones")
            if name == "mixed":
                self.assertGreater(clones["full"]["object_bytes"], clones["depth-1"]["object_bytes"], "--depth 1 fetches less")

    def test_rclone_syncs_the_same_nights_to_the_server(self):
        if not WEED:
            self.skipTest("no --weed given")
        for name, variant in self.variants.items():
            nights = variant["nights"]
            for n in nights:
                copies, files = n["rclone"]["parquet_copies"], n["rclone"]["udr_files"]
                self.assertGreaterEqual(copies["bytes"], n["full_copy_bytes"] * 0.99, f"{name}: night {n['night']}: Parquet copies upload a full copy")
                self.assertGreater(files["bytes"], 0, f"{name}: night {n['night']}: rclone sent none of UDR's new files")
                self.assertGreater(copies["seconds"], 0)
            for n in nights[1:]:
                self.assertLess(
                    n["systems"]["udr"]["pushed_bytes"], n["rclone"]["parquet_copies"]["bytes"],
                    f"{name}: night {n['night']}: udr push sent as much as a full copy of the Parquet files",
                )
            # The directory copied back down is everything rclone sent up (a
            # file sent again when it changed comes down once, so not the sum
            # of the nights: the catalog is sent every night), and every file
            # of the repository as the last night left it (`rclone copy`
            # deletes nothing; its bytes can be fewer, as SQLite truncates
            # the catalog's write-ahead log).
            clone = variant["clones"]["rclone-dir"]
            sent = sum(n["rclone"]["udr_files"]["bytes"] for n in nights)
            self.assertLessEqual(clone["bytes"], sent, f"{name}: the rclone clone brought down more than was sent")
            self.assertGreaterEqual(clone["files"], nights[-1]["systems"]["udr"]["files"], f"{name}: the rclone clone lacks files")
            self.assertGreater(clone["seconds"], 0)

    def test_diff_and_history_agree_across_systems(self):
        operations = self.variants["mixed"]["operations"]
        diffs = {s: (o["diff"]["inserted"], o["diff"]["deleted"], o["diff"]["updated"]) for s, o in operations.items()}
        self.assertEqual(len(set(diffs.values())), 1, f"diff counts differ: {diffs}")
        inserted, deleted, updated = diffs["udr"]
        self.assertGreater(updated, 0)  # the scores are recomputed every night
        histories = {s: o["history"]["changes"] for s, o in operations.items()}
        self.assertEqual(set(histories.values()), {4}, f"the probed parcel changes every night: {histories}")
        self.assertIn("branch", operations["udr"])


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if "--udr-driver" not in arguments:
        sys.exit("usage: test_peers.py --udr-driver PATH [unittest options]")
    i = arguments.index("--udr-driver")
    DRIVER = arguments[i + 1]
    del arguments[i : i + 2]
    if "--weed" in arguments:
        i = arguments.index("--weed")
        WEED = arguments[i + 1]
        del arguments[i : i + 2]
    unittest.main(argv=[sys.argv[0], *arguments], verbosity=2)
