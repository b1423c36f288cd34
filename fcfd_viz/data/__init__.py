"""Datasets: the embedded ones (scikit-learn's digits, :mod:`.digits`; the 100-class
digit-pairs, :mod:`.digit_pairs`) and the downloaded ones (CIFAR, ImageNet folders), built from
a :class:`~fcfd_viz.data.datasets.DataConfig` (:mod:`.datasets`) into loaders (:mod:`.loaders`).

May import: errors, io.
"""
