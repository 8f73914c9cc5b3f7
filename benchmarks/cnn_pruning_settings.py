"""The CNN channel-pruning study's settings, shared by its runner (`cnn_pruning.py`) and
its report (`cnn_pruning_report.py`)."""

DEFAULT_RESULTS = "results/cnn_pruning.jsonl"
WORK_DIR = "results/tmp/cnn_pruning"
WIDTHS = (32, 64, 128)
LR, BATCH = 1e-3, 200
BASE_EPOCHS, FINETUNE_EPOCHS = 6, 2
VALIDATION = 5000
LEVELS = (0.5, 0.7, 0.9)
SLIMMING_L1 = 1e-4  # Liu et al. 2017's penalty on BatchNorm's γ
SPECTRAL_L1 = 1e-2  # on λ_in; chosen on validation by `tune` (pilot in the results file; docs page)
TUNE_PENALTIES = (0.0, 1e-3, 1e-2)
PRUNING_ROUTES = ("spectral", "l1_gradual", "l1_oneshot", "slimming")
STUDY_ROUTES = ("study_frozen", "study_trainable", "study_conv_equal")
