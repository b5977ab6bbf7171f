"""Pure modules, no Beam: the shared preprocessing, records, tolerance, summary maths, diagnosis,
run diff and prediction formats."""
