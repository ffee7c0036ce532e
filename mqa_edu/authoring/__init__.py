"""Tools for the course's authors, not used by students or the grader: the student versions of notebooks and exercises
(``make_exercise``), the student release (``release``), offline slide decks (``slides``) and the text of every
notebook's first cell (``setup_cell``). They sit on top: nothing taught, no check and nothing the grader runs imports
them.
"""
