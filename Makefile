# vmlab: `make demo` and `make test` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench sensitivity lint handout autograder clean system-deps redteam

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the cross-checks use (GNU binutils for RISC-V, bubblewrap). Installed when we
# are root and apt-get exists (CI, Gradescope); elsewhere the tests that need them say so.
system-deps:
	@bash .ci/system-deps

# The grader at work: the reference solution earns full marks, the untouched handout zero on
# every part; both graded with every test, hidden ones included, as on Gradescope.
demo: $(STAMP)
	@echo "== kernel.S under the VMM with shadow paging (the guest's own console output)"
	@$(BIN)/vmlab run --vmm shadow --stats solution/guests/kernel.S
	@echo "== grading the reference solution (all tests, hidden ones included; a few minutes)"
	@$(BIN)/vmlab grade solution --out .vmlab/demo/solution-results.json
	@echo "== grading the untouched handout"
	@$(BIN)/vmlab grade handout --out .vmlab/demo/handout-results.json
	@echo "== results.json for Gradescope: .vmlab/demo/"

test: $(STAMP) system-deps
	$(BIN)/ruff check solution grader tests bench
	$(BIN)/python -m pytest -n 2 -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/run.py

# How reliably the visible tests catch each buggy VMM of tests/buggy_vmms.py, over other seeds
# (about five minutes for 8 seeds, here).
sensitivity: $(STAMP)
	$(BIN)/python bench/sensitivity.py --seeds 8

# Hostile submissions (tests/redteam/) graded as Gradescope grades them: a table of each attack,
# the score it got and deserved, the wall time and the sandbox's layers. Run as root (as on
# Gradescope and in CI) it gives each run a private /tmp. A few minutes on 2 cores (three
# attacks at once: most of their time is the grader waiting on a hung worker).
redteam: $(STAMP) system-deps
	$(BIN)/python -m tests.redteam.run -j 3

handout: $(STAMP)
	$(BIN)/vmlab build handout

# The zip to upload as the assignment's autograder on Gradescope; the hidden tests' seeds come
# from the course offering's secret: `make autograder VMLAB_SECRET=...` (or export it).
autograder: $(STAMP)
	$(BIN)/vmlab build autograder

lint: $(STAMP)
	$(BIN)/ruff check solution grader tests bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
