"""The paper's experiment: rank classes by cross-entropy recall, pick the important classes
(worst1, worst2, median), sweep CAMRI, ArcFace, normalized softmax, WCE and CRWWCE over their
grids and seeds, add the post-hoc threshold-moving baseline, keep the settings that maintain
accuracy, and report a table in the layout of the paper's Table 1.

One module per job, in layers, each importing only those below it (``tests/test_imports.py``
keeps it so): :mod:`.spec` (the spec and presets, what defines a run: its config and id,
``ProtocolError``, the roles) -> :mod:`.schema` (what a record and a folder's files must hold)
-> :mod:`.locks` (the results folder and its locks) -> :mod:`.store` (reading and writing
records and scores) -> :mod:`.curves` (exact threshold-moving curves, the two-axis comparison
with the oracle and the out-of-sample reference, the verdict) -> :mod:`.selection` (ranking and choices on the validation split, threshold
moving) -> :mod:`.workers` (several runs in several processes) -> :mod:`.runner` (plan, one
run, the whole protocol) -> :mod:`.report` (the table) -> :mod:`.sensitivity` (CAMRI's margin
x scale sweep on a protocol's setup). The public names are all importable from here.
"""

from camri_utils.protocol import curves
from camri_utils.protocol.report import (REFERENCES, Summary, comparison_cells, comparison_table, convergence,
                                         current_records, curve_comparisons, out_of_sample_cells, plan_status,
                                         reference_curves, report, threshold_curve_frames,
                                         setting_text, summarize)
from camri_utils.protocol.runner import PlannedRun, plan, run
from camri_utils.protocol.selection import (Choice, Selection, accuracy_threshold, rank_classes,
                                            records_frame, score_scale, select, selected_on, selection_metrics,
                                            setting_key, table_methods, threshold_records)
from camri_utils.protocol.sensitivity import (SWEEPS, SweepSpec, run_sweep, sweep_choice, sweep_frame,
                                              sweep_plan, sweep_preset, sweep_records, sweep_report)
from camri_utils.protocol.spec import (PRESETS, ROLES, ProtocolError, ProtocolSpec, margin_policy, preset, run_id,
                                       train_config)
from camri_utils.protocol.store import SCHEMA, load_records, load_scores, read_pins, read_spec, results_folder

__all__ = ["ProtocolSpec", "PRESETS", "preset", "margin_policy", "run", "plan", "PlannedRun", "train_config",
           "report", "summarize", "convergence", "curves", "reference_curves", "curve_comparisons", "comparison_table",
           "comparison_cells", "out_of_sample_cells", "plan_status", "threshold_curve_frames", "REFERENCES", "accuracy_threshold", "score_scale",
           "Summary", "setting_text", "current_records", "records_frame", "rank_classes", "select",
           "Selection", "Choice", "setting_key", "selection_metrics", "selected_on", "table_methods",
           "threshold_records", "load_records", "load_scores", "read_spec", "read_pins", "results_folder", "run_id",
           "ProtocolError", "SCHEMA", "ROLES", "SweepSpec", "SWEEPS", "sweep_preset", "sweep_plan", "run_sweep",
           "sweep_records", "sweep_frame", "sweep_choice", "sweep_report"]
