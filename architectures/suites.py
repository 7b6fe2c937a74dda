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
