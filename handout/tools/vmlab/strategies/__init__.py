"""Hypothesis strategies that the grader and the test suite share.

They build plain data (lists of physical writes, CSR values, addresses) and import nothing from
the machine or the solution, so they can be used against any implementation.
"""
