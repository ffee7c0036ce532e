"""The PRIVATE part of each graded exercise: references, hidden-case generators and the known-mistake models.

Only the grader's process loads these. The sandbox hides this folder from the kernels it grades, and the student
release (``mqa-release``) leaves it out. Check cells use the public part instead: ``mqa_edu/checks/public/<name>.json``,
written from these modules by ``mqa-make-exercise`` (questions, public cases, hints; expected values only as salted
hashes).
"""
