"""Counting rules for recurrent layers: LSTM, GRU and Elman RNN (tanh or ReLU), whole sequences and single cells.

Eval-mode PyTorch on the CPU runs an LSTM as one ``mkldnn_rnn_layer`` call per layer and direction, and a GRU, an
RNN or an LSTM with a projection as its decomposition (``addmm``, ``unsafe_split``, the gates), which the generic
rules count. CUDA runs ``_cudnn_rnn``, or per step two matmuls and ``_thnn_fused_lstm_cell``/``_gru_cell``. The
composite ops (``lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu`` and the ``*_cell`` ops) are what a graph tracer sees.
Every one follows the same rule, per time step and batch element, for each layer and direction:

* **MACs** = each element of the layer's weight matrices once: ``G * H * (I + R)`` for ``G`` gates (LSTM 4, GRU 3,
  RNN 1), ``H`` hidden units, ``I`` inputs and ``R`` recurrent inputs (``H``, or ``P`` for an LSTM with
  ``proj_size=P``), plus ``P * H`` for that projection.
* **FLOPs** = 2 x MACs + one per bias element (``b_ih`` and ``b_hh``: ``2 * G * H``) + the cell's elementwise ops
  per hidden unit, as PyTorch computes them: RNN 2 (the sum of the two products, the activation); LSTM 13 (the 4
  gate sums, 3 sigmoids, tanh for g, ``f*c + i*g`` as 3, tanh of c, ``o * tanh(c)``); GRU 10 (the sums and sigmoids
  of r and z, 4; ``r * (W_hn h + b_hn)``, the add and the tanh of n, 3; ``h' = n + z * (h - n)``, 3).
* **Scratch** for the peak-memory model: one step's gate pre-activations of every direction (``B * D * G * H``: a
  runtime such as TFLite Micro's LSTM kernel computes a sequence step by step), and between stacked layers the
  sequence one layer hands to the next (two of them live at once from the third layer on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from effbench.profiler.cost import Count, Handle, arg, first_tensor

#: Gates per hidden unit, and elementwise FLOPs per hidden unit and step besides the bias adds (module docstring).
GATES: dict[str, int] = {"rnn": 1, "lstm": 4, "gru": 3}
CELL_FLOPS: dict[str, int] = {"rnn": 2, "lstm": 13, "gru": 10}
_CELL_OF_GATES = {g: cell for cell, g in GATES.items()}
#: cuDNN's mode numbers (cudnnRNNMode_t: RNN_RELU, RNN_TANH, LSTM, GRU).
_CUDNN_MODES = {0: "rnn", 1: "rnn", 2: "lstm", 3: "gru"}


def layer(cell: str, positions: int, batch: int, weights: Sequence[Tensor]) -> Count:
    """One layer in one direction over ``positions`` inputs (steps x batch).

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        positions: Time steps x batch elements.
        batch: Batch elements of one step (for the scratch).
        weights: ``[w_ih, w_hh]``, then ``[b_ih, b_hh]`` if the layer has biases, then ``w_hr`` if it projects.
    """
    matrices = sum(w.numel() for w in weights if w.dim() == 2)
    biases = sum(w.numel() for w in weights if w.dim() == 1)
    gates = GATES[cell]
    hidden = weights[0].shape[0] // gates
    macs = positions * matrices
    flops = 2 * macs + positions * (biases + CELL_FLOPS[cell] * hidden)
    return Count(macs, flops, scratch=batch * gates * hidden)


def stack(
    cell: str, positions: int, batch: int, params: Sequence[Tensor], num_layers: int, bidirectional: bool
) -> Count:
    """Every layer and direction of a recurrent module; ``params`` as ``nn.LSTM/GRU/RNN._flat_weights`` lists them."""
    directions = 2 if bidirectional else 1
    groups = num_layers * directions
    per = len(params) // groups
    counts = [layer(cell, positions, batch, params[g * per : (g + 1) * per]) for g in range(groups)]
    out_size = params[1].shape[1]  # w_hh is (G*H, R): a layer outputs R (H, or the projection's P) per direction
    handoff = (min(num_layers, 3) - 1) * positions * directions * out_size
    return Count(
        sum(c.macs for c in counts), sum(c.flops for c in counts), scratch=directions * counts[0].scratch + handoff
    )


def _sequence_handle(cell: str) -> Handle:
    """Factory for the composite ``lstm``/``gru``/``rnn_tanh``/``rnn_relu`` ops, both overloads."""

    def handle(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
        if isinstance(args[3], bool):  # .input(input, hx, params, has_biases, num_layers, dropout, train, bidir, ...)
            x, hx, params, _, num_layers, _, _, bidirectional = args[:8]
            h0 = first_tensor(hx)
            batch = h0.shape[-2] if h0.dim() == 3 else 1  # an unbatched sequence has a 2-D state
        else:  # .data(data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidir): packed
            x, batch_sizes, _, params, _, num_layers, _, _, bidirectional = args[:9]
            batch = int(batch_sizes[0])
        return stack(cell, x.numel() // x.shape[-1], batch, params, int(num_layers), bool(bidirectional))

    return handle


def _mkldnn_layer(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
    # (input, weight0..3, hx_, cx_, reverse, batch_sizes, mode, hidden_size, num_layers, has_biases, bidirectional,
    #  batch_first, train): one layer, one direction; the input is always (steps, batch, features) here, and
    # without biases weight2/weight3 are placeholders, not biases.
    x, hx, hidden, has_biases = args[0], args[5], int(args[10]), bool(args[12])
    weights = list(args[1:5] if has_biases else args[1:3])
    cell = _CELL_OF_GATES[args[1].shape[0] // hidden]
    return layer(cell, x.numel() // x.shape[-1], hx.numel() // hx.shape[-1], weights)


def _cudnn(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
    # (input, weight, weight_stride0, weight_buf, hx, cx, mode, hidden_size, proj_size, num_layers, batch_first,
    #  dropout, train, bidirectional, batch_sizes, dropout_state); hx is (layers x directions, batch, R).
    x, weights, hx = args[0], args[1], args[4]
    return stack(_CUDNN_MODES[int(args[6])], x.numel() // x.shape[-1], hx.shape[-2], weights, int(args[9]),
                 bool(args[13]))  # fmt: skip


def _cell_handle(cell: str) -> Handle:
    """Factory for ``lstm_cell``/``gru_cell``/``rnn_tanh_cell``/``rnn_relu_cell``: one step of one layer."""

    def handle(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
        # (input, hx, w_ih, w_hh, b_ih, b_hh)
        weights = [args[2], args[3], arg(args, kwargs, 4, "b_ih"), arg(args, kwargs, 5, "b_hh")]
        batch = args[0].numel() // args[0].shape[-1]
        return layer(cell, batch, batch, [w for w in weights if w is not None])

    return handle


def _fused_cell_handle(cell: str) -> Handle:
    """Factory for CUDA's ``_thnn_fused_*_cell``: the gates' elementwise work after two bias-free matmuls."""

    def handle(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Count:
        # (input_gates, hidden_gates, cx or hx, input_bias, hidden_bias)
        gates, state = args[0], args[2]
        biases = [arg(args, kwargs, 3, "input_bias"), arg(args, kwargs, 4, "hidden_bias")]
        return Count(0, sum(b is not None for b in biases) * gates.numel() + CELL_FLOPS[cell] * state.numel())

    return handle


#: op name -> handle, merged into :data:`effbench.profiler.counting.HANDLES`.
HANDLES: dict[str, Handle] = {
    "lstm": _sequence_handle("lstm"),
    "gru": _sequence_handle("gru"),
    "rnn_tanh": _sequence_handle("rnn"),
    "rnn_relu": _sequence_handle("rnn"),
    "mkldnn_rnn_layer": _mkldnn_layer,
    "_cudnn_rnn": _cudnn,
    "lstm_cell": _cell_handle("lstm"),
    "gru_cell": _cell_handle("gru"),
    "rnn_tanh_cell": _cell_handle("rnn"),
    "rnn_relu_cell": _cell_handle("rnn"),
    "_thnn_fused_lstm_cell": _fused_cell_handle("lstm"),
    "_thnn_fused_gru_cell": _fused_cell_handle("gru"),
}
