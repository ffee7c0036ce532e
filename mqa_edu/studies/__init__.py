"""The research behind notebooks 08-10: the trade-off study (``tradeoff``) and the SmolLM2 study (``smollm2``).

Not taught code: these modules build on the taught modules (``convert``, ``train``, ``uptrain``...) and nothing taught
imports them. Run them with ``python -m mqa_edu.studies <study>`` (see ``__main__.py``).
"""
