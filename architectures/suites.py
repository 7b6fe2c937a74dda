"""The suites that ``--suite`` takes. Each lists model patterns and the settings its stages read."""

from effbench.registry import Suite, register_suite

register_suite(
    Suite(
        name="reference",
        patterns=("mobilenet_v2_100_imagenet", "resnet18_imagenet"),
        reference="mobilenet_v2_100_imagenet",
        doc="published ImageNet reference models, for checking the counters",
    )
)

register_suite(
    Suite(
        name="embedded",
        patterns=("tiny_hand*", "mobilenet_v2_100", "mobilenet_v2_075", "mobilenet_v2_050", "mobilenet_v2_035"),
        reference="mobilenet_v2_100",
        doc="2.5D hand pose on 120 x 160 depth: the tiny net, its ablations and the MobileNetV2 keypoint baselines",
    )
)

register_suite(
    Suite(
        name="smoke",
        patterns=("tiny_hand", "mobilenet_v2_035"),
        reference="mobilenet_v2_035",
        doc="two hand-pose models with small budgets, for quick runs and tests",
    )
)
