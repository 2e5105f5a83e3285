"""The labels with a meaning of their own, shared by every layer (data, training, calibration, runtime, node)."""

UNKNOWN = "unknown"  # the answer when no class is sure enough, or the image is unlike any training image
# A class of this name means "nothing in view" (the empty bench between objects): answered like any class,
# scored as right on frames with no object (replay). `glassware synth --count background=N` renders it.
BACKGROUND = "background"
OTHER = "other"  # a vessel that is none of the named classes
# Answers the robot does not act on (nothing to pick up, not one of ours): right for much that is not
# glassware, so the open-set score never vetoes them, and a wrong one costs a wait, like `unknown`.
CATCH_ALL = (BACKGROUND, OTHER)
