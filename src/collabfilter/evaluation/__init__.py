"""How good a trained model is, beside what it must beat: baselines
(:mod:`~collabfilter.evaluation.baselines`), top-N lists on a hold-out
(:mod:`~collabfilter.evaluation.topn`), and reports beyond one number: predictions
beside truth, errors by activity, cross-validation (:mod:`~collabfilter.evaluation.reports`).
The metric functions themselves are :mod:`collabfilter.metrics`."""
