"""`emu run`'s quick command-line reader (emu/cli.py _quick_run) gives what
argparse gives, or steps aside for argparse: checked against the parser
itself, on its option table and on many command lines."""
import itertools

import pytest

from emu import cli


def _run_parser():
    p = cli._parser()
    sub = next(a for a in p._actions if a.dest == "command")
    return p, sub.choices["run"]


def test_table_matches_the_run_parser():
    _p, run = _run_parser()
    seen = set()
    for act in run._actions:
        if not act.option_strings or act.dest == "help":
            continue
        names = [o for o in act.option_strings if o.startswith("--")]
        known = [o for o in names if o in cli._RUN_FLAGS or o in cli._RUN_VALUES]
        if not known:
            # an option the quick reader does not know sends the command line to
            # argparse; what it reads for it meanwhile (None) must be its default
            assert act.default in (None, False) or cli._RUN_DEFAULTS.get(act.dest) == act.default, act.dest
            continue
        for o in known:
            seen.add(o)
            if o in cli._RUN_FLAGS:
                assert act.nargs == 0 and act.const is True and cli._RUN_FLAGS[o] == act.dest
            else:
                dest, check = cli._RUN_VALUES[o]
                assert dest == act.dest and act.nargs is None
                if isinstance(check, tuple):
                    assert tuple(act.choices) == check
                else:
                    assert act.choices is None and (act.type or None) is check
        assert cli._RUN_DEFAULTS.get(act.dest) == act.default or (
            act.dest not in cli._RUN_DEFAULTS and act.default in (None, False)), act.dest
    assert seen == set(cli._RUN_FLAGS) | set(cli._RUN_VALUES)


OPTION_WORDS = [
    ["--strace"], ["--stats"], ["--root", "/tmp"], ["--root=/"], ["--sandbox", "/tmp"], ["--seed", "7"],
    ["--seed=12"], ["--seed", "x"], ["--seed", "-3"], ["--profile", "stealth"], ["--profile=bogus"],
    ["--time", "virtual"], ["--time=host"], ["--tier", "jit"], ["--tier", "interp"], ["--record", "L"],
    ["--replay=L"], ["--report", "r.json"], ["--stra"], ["-h"], ["--strace=1"], ["--root"], ["--", "x"],
    ["--root=-x"], ["--unknown"], ["-v"],
]
PROGRAM_WORDS = [[], ["prog"], ["prog", "a", "--strace", "-x"], ["prog", "--", "b"], ["--", "prog"], [""],
                 ["prog with space"]]


def _argparse(argv):
    p, _run = _run_parser()
    try:
        return vars(p.parse_args(argv))
    except SystemExit:
        return "error"


def _cases():
    for n in (0, 1, 2):
        for opts in itertools.combinations(range(len(OPTION_WORDS)), n):
            for prog in PROGRAM_WORDS:
                yield ["run"] + [w for i in opts for w in OPTION_WORDS[i]] + prog


def test_same_namespace_as_argparse(capsys):
    quick = 0
    for argv in _cases():
        got = cli._quick_run(argv)
        if got is None:
            continue
        quick += 1
        want = _argparse(argv)
        assert want != "error", argv
        have = {k: getattr(got, k) for k in want}
        assert have == want, argv
    capsys.readouterr()
    assert quick > 300           # the common forms do take the quick path


@pytest.mark.parametrize("argv", [["boot", "k"], ["bench", "p"], ["--version"], [], ["run"], ["run", "--stats"]])
def test_other_command_lines_go_to_argparse(argv):
    assert cli._quick_run(argv) is None
