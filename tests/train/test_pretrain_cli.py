"""`lvmmed pretrain` end to end: SIGKILL at any moment leaves a valid checkpoint, resuming it
continues bit-identically, and bad input fails cleanly (test_pretrain_learns.py: the loss).

usage: test_pretrain_cli.py LVMMED_EXE REAL_IMAGE_DIR [full|quick]   (Debian's /usr/bin/python3)
quick (sanitizer builds, ~10x slower): a short resume and the error paths only.
"""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
from PIL import Image

EXE = REAL = None
QUICK = len(sys.argv) > 3 and sys.argv[3] == "quick"
ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


def read_safetensors(path):
    """(metadata, {name: bytes}) of a safetensors file; raises on a torn or malformed file."""
    with open(path, "rb") as f:
        blob = f.read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__")
    data = blob[8 + n:]
    tensors = {}
    end = 0
    for name, t in header.items():
        b, e = t["data_offsets"]
        tensors[name] = data[b:e]
        end = max(end, e)
    if end != len(data):
        raise ValueError(f"{path}: data section has {len(data)} bytes, header covers {end}")
    return meta, tensors


def run(*args, check=True, timeout=300):
    p = subprocess.run([EXE, "pretrain", *args], capture_output=True, text=True, env=ENV, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"lvmmed pretrain {' '.join(args)} exited {p.returncode}:\n{p.stderr}")
    return p


class KillAndResume(unittest.TestCase):
    COMMON = ["--arch", "resnet18", "--image-size", "32", "--batch", "16", "--seed", "11", "--threads", "2",
              "--quiet"]
    STEPS = 10

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = os.path.join(cls.tmp.name, "images")
        os.mkdir(cls.data)
        rng = np.random.default_rng(3)
        # 40 images: 16-image batches roll over the epoch boundary mid-step
        for i in range(40):
            a = (rng.random((36 + i % 7, 44)) * 255).astype(np.uint8)
            Image.fromarray(a).save(os.path.join(cls.data, f"img{i:02d}.png"))
        cls.reference = os.path.join(cls.tmp.name, "reference.safetensors")
        run("--data", cls.data, "--out", cls.reference, "--steps", str(cls.STEPS), *cls.COMMON)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assert_same_run(self, path):
        meta_a, ta = read_safetensors(self.reference)
        meta_b, tb = read_safetensors(path)
        self.assertEqual(sorted(ta), sorted(tb))
        differ = [k for k in ta if ta[k] != tb[k]]
        self.assertEqual(differ, [], f"{len(differ)} tensors differ from the uninterrupted run")
        for key in ("step", "epoch", "position", "images", "noise_counter", "lvmmed_config"):
            self.assertEqual(meta_a[key], meta_b[key], key)

    def test_resume_is_bit_identical(self):
        ck = os.path.join(self.tmp.name, "split.safetensors")
        run("--data", self.data, "--out", ck, "--steps", "4", *self.COMMON)
        self.assertEqual(read_safetensors(ck)[0]["step"], "4")
        # settings come back from the checkpoint: only the data and the target are given
        run("--data", self.data, "--out", ck, "--resume", ck, "--steps", str(self.STEPS), "--quiet")
        self.assert_same_run(ck)

    @unittest.skipIf(QUICK, "timed kills need full speed")
    def test_sigkill_at_any_moment(self):
        ck = os.path.join(self.tmp.name, "killed.safetensors")
        kills = 0
        for delay in (0.4, 1.1, 1.9, 2.6, 3.3):
            args = ["--data", self.data, "--out", ck, "--steps", str(self.STEPS), "--checkpoint-every", "1"]
            args += ["--resume", ck, "--quiet"] if os.path.exists(ck) else self.COMMON
            p = subprocess.Popen([EXE, "pretrain", *args], env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
            time.sleep(delay)
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait()
            if os.path.exists(ck):  # never torn: the last complete checkpoint
                meta, _ = read_safetensors(ck)
                self.assertEqual(meta["lvmmed_checkpoint"], "1")
        self.assertGreater(kills, 0, "the runs finished before any kill: the test proves nothing")
        if os.path.exists(ck):
            args = ["--data", self.data, "--out", ck, "--resume", ck, "--steps", str(self.STEPS), "--quiet"]
        else:
            args = ["--data", self.data, "--out", ck, "--steps", str(self.STEPS), *self.COMMON]
        run(*args)
        self.assert_same_run(ck)

    @unittest.skipIf(QUICK, "timed signal needs full speed")
    def test_sigint_writes_a_checkpoint(self):
        ck = os.path.join(self.tmp.name, "interrupted.safetensors")
        # progress on: the signal goes out after the first finished step, however slow the machine
        args = [a for a in self.COMMON if a != "--quiet"] + ["--print-every", "1"]
        p = subprocess.Popen([EXE, "pretrain", "--data", self.data, "--out", ck, "--steps", "1000",
                              "--checkpoint-every", "0", *args], env=ENV, stderr=subprocess.PIPE,
                             text=True)
        seen = []
        for line in p.stderr:
            seen.append(line)
            if line.startswith("step "):
                break
        self.assertIsNone(p.poll(), "".join(seen))
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        err = "".join(seen) + err
        self.assertEqual(p.returncode, 130, err)
        step = int(read_safetensors(ck)[0]["step"])
        self.assertGreater(step, 0)
        self.assertLess(step, 1000)

    def test_a_divergent_setting_changes_the_result(self):
        # the equality above can fail: another seed gives other tensors
        other = os.path.join(self.tmp.name, "other.safetensors")
        args = list(self.COMMON)
        args[args.index("--seed") + 1] = "12"
        run("--data", self.data, "--out", other, "--steps", "2", *args)
        _, ta = read_safetensors(self.reference)
        _, tb = read_safetensors(other)
        self.assertNotEqual(ta["conv1.weight"], tb["conv1.weight"])


class BadInput(unittest.TestCase):
    def test_errors(self):
        with tempfile.TemporaryDirectory() as tmp:
            empty = os.path.join(tmp, "empty")
            os.mkdir(empty)
            bad = os.path.join(tmp, "bad.safetensors")
            with open(bad, "wb") as f:
                f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
            out = os.path.join(tmp, "out.safetensors")
            cases = [
                ([], 2, "--data and --out are required"),
                (["--data", empty, "--out", out, "--arch", "vgg"], 2, "unknown --arch"),
                (["--data", empty, "--out", out, "--steps", "-3"], 2, "--steps"),
                (["--data", empty, "--out", out, "--steps", "2", "--epochs", "1"], 2, "not both"),
                (["--data", empty, "--out", out, "--frobnicate"], 2, "unknown argument"),
                (["--data", empty, "--out", out, "--arch", "resnet18", "--image-size", "32"], 1, "images"),
                (["--data", os.path.join(tmp, "missing"), "--out", out], 1, "missing"),
                (["--data", empty, "--out", out, "--resume", bad], 1, "bad.safetensors"),
                (["--data", empty, "--out", out, "--resume", os.path.join(tmp, "nope")], 1, "nope"),
            ]
            for args, code, needle in cases:
                p = run(*args, check=False)
                self.assertEqual(p.returncode, code, (args, p.stderr))
                self.assertIn(needle, p.stderr, args)
            self.assertFalse(os.path.exists(out))
            p = subprocess.run([EXE, "pretrain", "--help"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0)
            self.assertIn("--resume", p.stdout)


if __name__ == "__main__":
    EXE, REAL = sys.argv[1], sys.argv[2]
    if QUICK:
        KillAndResume.STEPS = 5
    unittest.main(argv=sys.argv[:1], verbosity=2)
