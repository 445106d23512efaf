# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""Figures of training runs: accuracy (or loss) curves of several aggregations."""

__all__ = ["plot_training_curves"]


def plot_training_curves(panels, metric="val_accuracy", axes=None, ylabel=None):
    """One panel per experiment, one curve per run, of ``metric`` against the epoch.

    Parameters
    ----------
    panels : dict
        Panel title -> {run label -> history dict (metric name -> values per epoch)}.
    metric : str
        The history entry to plot.
    axes : sequence of `matplotlib.axes.Axes`, optional
        One per panel; a new figure by default.
    ylabel : str, optional
        The y-axis label (``metric`` by default).

    Returns
    -------
    figure : `matplotlib.figure.Figure`
    """
    import matplotlib.pyplot as plt

    if axes is None:
        figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6),
                                    sharey=True, squeeze=False, layout="constrained")
        axes = axes[0]
    figure = axes[0].figure
    for ax, (title, runs) in zip(axes, panels.items()):
        for label, history in runs.items():
            values = history[metric]
            ax.plot(range(1, len(values) + 1), values, label=label, marker=".")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(ylabel or metric.replace("_", " "))
    axes[0].legend(fontsize="small")
    return figure
