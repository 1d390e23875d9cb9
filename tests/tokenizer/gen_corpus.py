#!/usr/bin/env python3
"""Writes tests/data/tokenizer_corpus.txt: the tokenizer test corpus, one JSON string per line
(so entries can hold newlines, tabs and any Unicode). Seeded: the output is reproducible.

Usage: python3 tests/tokenizer/gen_corpus.py > tests/data/tokenizer_corpus.txt
Random characters are drawn only from code points assigned in the local UnicodeData.txt (Unicode
15.0 on Debian 12), so a newer Unicode in the reference (Node's ICU) classifies them the same way.
"""
import json
import random
import sys

rng = random.Random(20261126)

PROSE = [
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times.",
    "She said, \"I don't think we'll make it before 5 o'clock.\"",
    "They're sure it's fine; we've checked, and you'd agree I'm right.",
    "Tokenizers split text into pieces; models only ever see the pieces.",
    "In 1969, Apollo 11 landed on the Moon — a giant leap for mankind.",
    "Mr. O'Neil's well-known co-operative re-opened on Jan. 3rd, 2024.",
    "Hello world! How are you doing today??? Fine... thanks!!!",
    "The price rose from $3.50 to $12,999.99 (a 371,428% increase).",
    "E-mail me at someone@example.com or visit https://example.org/path?q=1&r=2#frag.",
    "Large language models predict the next token given all previous tokens.",
    "A man, a plan, a canal: Panama.",
    "ALL CAPS SENTENCES SHOUT; lower case ones whisper.",
    "Why don't WE'LL and THEY'RE split the same way as we'll and they're?",
    "Reasoning models think first, then answer.",
]

CODE = [
    "int main(int argc, char** argv) { return argc > 1 ? 0 : 1; }",
    "    for (size_t i = 0; i < n; ++i) sum += a[i] * b[i];",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "\tif (x == NULL) {\n\t\treturn -EINVAL;\n\t}",
    "const re = /'s|'t|\\p{L}+/gu; // JS regex",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;",
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!(\"{:?}\", v); }",
    "x = {\"key\": [1, 2.5, null, true], 'other': None}",
    "git commit -m \"fix: off-by-one in tokenizer\" && git push origin HEAD",
    "    }\n}\n\n",
    "template <class T> constexpr T clamp(T v, T lo, T hi) noexcept { return v < lo ? lo : hi < v ? hi : v; }",
    "<div class=\"row\"><span id='x'>&lt;tag&gt; &amp; more</span></div>",
    "$ ./configure --prefix=/usr/local && make -j$(nproc) && sudo make install",
    "    assert_eq!(tokens, vec![151646, 9707, 11, 1879, 0]);",
]

LOGS = [
    "[    0.000000] Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
    "[    0.004211] BIOS-e820: [mem 0x0000000000100000-0x000000007ffdbfff] usable",
    "[   12.345678] usb 1-1.2: new high-speed USB device number 3 using ehci-pci",
    "[ 2345.678901] EXT4-fs (nvme0n1p2): mounted filesystem 3f1c9a2e-7b1d-4c3a-9e2f-0a1b2c3d4e5f with ordered data mode. Quota mode: none.",
    "Nov 26 13:04:41 buildhost systemd[1]: Started session-42.scope - Session 42 of User builder.",
    "Nov 26 13:04:42 buildhost sshd[23817]: Accepted publickey for builder from 10.0.3.17 port 52144 ssh2: ED25519 SHA256:Zm9vYmFyYmF6",
    "Nov 26 13:05:01 buildhost CRON[24001]: (root) CMD (command -v debian-sa1 > /dev/null && debian-sa1 1 1)",
    "2026-11-26T13:04:41.123456+00:00 node-7 kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56 SRC=203.0.113.5 DST=198.51.100.7 LEN=60 PROTO=TCP SPT=44321 DPT=22",
    "Jan  3 04:12:55 gw dhclient[812]: DHCPACK of 192.168.1.23 from 192.168.1.1 (xid=0x5a3c9e1f)",
    "kernel: BUG: kernel NULL pointer dereference, address: 0000000000000008",
    "kernel: #PF: supervisor read access in kernel mode",
    "kernel: Oops: 0000 [#1] PREEMPT SMP NOPTI",
    "kernel: CPU: 3 PID: 4711 Comm: kworker/3:2 Tainted: G           OE      6.1.0-18-amd64 #1 Debian 6.1.76-1",
    "kernel: RIP: 0010:mydrv_irq_handler+0x3c/0x120 [mydrv]",
    "kernel: RSP: 0018:ffffb4c1c0173e58 EFLAGS: 00010246",
    "kernel: RAX: 0000000000000000 RBX: ffff9a3b4c8e2000 RCX: 0000000000000001",
    "kernel: Call Trace:\nkernel:  <IRQ>\nkernel:  ? __die+0x23/0x70\nkernel:  ? page_fault_oops+0x171/0x4e0\nkernel:  __handle_irq_event_percpu+0x4a/0x190\nkernel:  </IRQ>",
    "kernel: ---[ end trace 0000000000000000 ]---",
    "Nov 26 13:10:00 buildhost systemd-journald[311]: Data hash table of /var/log/journal/3a5b7c9d/system.journal has a fill level at 75.0 (8533 of 11377 items, 6553600 file size, 768 bytes per hash table item), suggesting rotation.",
    "audit: type=1400 audit(1732626281.123:45): apparmor=\"DENIED\" operation=\"open\" profile=\"/usr/sbin/cupsd\" name=\"/etc/ssl/private/\" pid=1203 comm=\"cupsd\"",
    "segfault at 7f3a2b1c0000 ip 000055d4c3b2a1f0 sp 00007ffd5e6f7a80 error 4 in app[55d4c3b00000+2f000]",
    "OOM killer: Killed process 31337 (python3) total-vm:16777216kB, anon-rss:8388608kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:16384kB oom_score_adj:0",
]

LANG = [
    "深度求索公司发布了新的推理模型，它在数学和编程任务上表现出色。",
    "我今天很高兴，因为天气很好。你呢？",
    "机器学习是人工智能的一个分支。",
    "東京は日本の首都です。ひらがなとカタカナと漢字を混ぜて書きます。",
    "すみません、駅はどこですか？ コーヒーを一杯ください。",
    "한국어는 한글로 씁니다. 안녕하세요, 만나서 반갑습니다!",
    "서울의 인구는 약 950만 명입니다.",
    "مرحبا بالعالم! اللغة العربية تكتب من اليمين إلى اليسار.",
    "هذا اختبار للمحلل اللغوي مع أرقام ١٢٣ و 456.",
    "नमस्ते दुनिया! हिन्दी देवनागरी लिपि में लिखी जाती है।",
    "भारत की जनसंख्या 140 करोड़ से अधिक है।",
    "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Москва — столица России; население около 13 млн человек.",
    "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg. Straße, Maß, Fußgängerübergänge.",
    "Größenordnung, Äpfel, Öl und Übermut – die deutsche Sprache hat Umlaute.",
    "Où est la bibliothèque ? L'élève a déjà mangé une crème brûlée à Noël.",
    "Ça va très bien, merci ! « Guillemets » et cœur, œuvre, naïve, façade.",
    "Ελληνικά: Καλημέρα κόσμε, ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
    "עברית: שלום עולם, זהו מבחן.",
    "ภาษาไทย: สวัสดีชาวโลก",
    "Tiếng Việt: Xin chào thế giới, tôi yêu Hà Nội.",
    "Español: ¿Dónde está el baño? ¡Qué día tan bonito! Año, niño, corazón.",
    "Português: Não há nada como o pão de queijo; ações, informação.",
    "Polski: Zażółć gęślą jaźń. Türkçe: Çok güzel bir gün, İstanbul.",
]

EMOJI = [
    "I love it 😀😃😄😁 so much!!! 🎉🎉🎉",
    "Family: 👨‍👩‍👧‍👦 couple: 👩‍❤️‍👨 rainbow flag: 🏳️‍🌈 pirate: 🏴‍☠️",
    "Skin tones: 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 and 🧑🏽‍💻 at work.",
    "Flags: 🇩🇪 🇫🇷 🇯🇵 🇨🇳 🇺🇸 🇧🇷 — keycaps: 1️⃣ 2️⃣ #️⃣",
    "❤️ vs ❤ vs ♥ and ☺️ vs ☺; 🤖 thinking 🤔 …",
    "Math: ∀x ∈ ℝ, x² ≥ 0; ∑ᵢ aᵢ = ∫₀¹ f(t) dt ≈ π/4 ± ε.",
    "Arrows → ← ↑ ↓ ⇒ and boxes ┌─┐│└┘ and ▁▂▃▄▅▆▇█",
]

SPECIALS = [
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "<think>", "</think>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|begin_of_text|>",
    "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<s>", "</s>", "<unk>",
    "<｜tool▁calls▁begin｜>", "<|fim_prefix|>", "<tool_call>", "<0x41>", "▁hello",
]

NFC_BITS = [
    "e\u0301", "A\u030a", "\u1100\u1161\u11a8", "o\u0308\u0304", "n\u0303o", "\u212b",
    "a\u0328\u0301", "\u0041\u0301\u0327", "q\u0307\u0323", "\u00c5\u0301", "\u0915\u093c",
]


def assigned_codepoints():
    cps = []
    with open("/usr/share/unicode/UnicodeData.txt", encoding="utf-8") as f:
        first = None
        for line in f:
            fields = line.split(";")
            cp = int(fields[0], 16)
            name, cat = fields[1], fields[2]
            if cat in ("Cs", "Co", "Cn"):
                continue
            if name.endswith("First>"):
                first = cp
                continue
            if name.endswith("Last>"):
                cps.extend(range(first, min(cp, first + 200) + 1))
                continue
            cps.append(cp)
    return cps


ASSIGNED = assigned_codepoints()


def random_unicode(n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            out.append(chr(rng.randint(0x20, 0x7E)))
        elif r < 0.4:
            out.append(rng.choice(" \t\n  "))
        else:
            out.append(chr(rng.choice(ASSIGNED)))
    return "".join(out)


def digits():
    n = rng.randint(1, 40)
    s = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(n - 1))
    forms = [s, s[:3] + "." + s[3:], "-" + s, s + "%", "v" + s, "0x" + s, s + "th", "(" + s + ")",
             " ".join(s[i:i + 3] for i in range(0, len(s), 3)), s + "," + s[::-1]]
    return rng.choice(forms)


def whitespace_mix():
    parts = []
    for _ in range(rng.randint(2, 8)):
        parts.append(rng.choice(["word", "x", "Hello", "世界", "123", "!", "é", "foo()"]))
        parts.append(rng.choice([" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "    ",
                                 "\u00a0", "\u3000", "\u2003", " \t \n", "\n   "]))
    s = "".join(parts)
    if rng.random() < 0.3:
        s = rng.choice([" ", "  ", "\n", "\t"]) + s
    return s


def special_mix():
    parts = []
    for _ in range(rng.randint(1, 5)):
        parts.append(rng.choice(SPECIALS))
        parts.append(rng.choice(["", " ", "hello", " world", "\n", "你好", "123", "Assistant"]))
    return "".join(parts)


def pick(lst):
    return rng.choice(lst)


def generators():
    return [
        lambda: pick(PROSE),
        lambda: " ".join(pick(PROSE) for _ in range(rng.randint(2, 4))),
        lambda: pick(CODE),
        lambda: pick(LOGS),
        lambda: "\n".join(pick(LOGS) for _ in range(rng.randint(2, 5))),
        lambda: pick(LANG),
        lambda: pick(LANG) + " " + pick(PROSE),
        lambda: pick(EMOJI),
        digits,
        lambda: " ".join(digits() for _ in range(rng.randint(2, 6))),
        whitespace_mix,
        special_mix,
        lambda: random_unicode(rng.randint(1, 60)),
        lambda: pick(PROSE).replace("e", pick(NFC_BITS)),
        lambda: "".join(pick(NFC_BITS) for _ in range(rng.randint(1, 6))),
        lambda: pick(CODE).replace("    ", "\t"),
        lambda: pick(PROSE).upper(),
        lambda: pick(LANG) + pick(EMOJI) + digits(),
    ]


def main():
    lines = []
    # Every fixed string once, then seeded mixtures.
    for group in (PROSE, CODE, LOGS, LANG, EMOJI, SPECIALS, NFC_BITS):
        lines.extend(group)
    lines.extend(["", " ", "  ", "\n", "\t", "\r\n", "   \n\n  ", "a", "'s", "'S", "I'M", "1", "12", "123",
                  "1234", "12345", "123456789012345678901234567890", " 1", "１２３", "٣٤٥", "Ⅻ", "½"])
    gens = generators()
    while len(lines) < 2200:
        lines.append(rng.choice(gens)())
    for line in lines:
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
