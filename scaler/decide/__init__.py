"""Deciding: from the workload's load to the replicas it should have. Pure.

Enters: load samples (unix seconds, value), the target's ready and current replicas,
``now``, and the policy. Leaves: a decision per tick — the decider's count, the window
averages and panic state that explain it, and the replicas to set. The modules, in the
order a sample flows through them:

* ``windows`` — Knative's 1 s bucket averages (``windows_batch``: the same for a whole
  recording at once, with numpy, for replay);
* ``predict/`` — the optional forecast that may raise a replica floor (numpy; scipy for
  Holt-Winters and EWMA only);
* ``kpa`` — Knative's decider, bit for bit (``kpa_batch``: its formulas as arrays);
* ``zero/`` — the way to zero and back: a fixed grace period or a warm schedule learnt
  from the idle-time histogram;
* ``pipeline`` — one policy's per-tick pipeline through all of the above, shared by the
  daemon and both replay engines.

May import: ``scaler.policy``, the standard library, and numpy/scipy in the modules named
above as array or forecast modules (never on the daemon's path when prediction is off).
Never I/O: no sources, actuators, clients, sockets, clocks or logging — ``now`` is always
an argument. ``.importlinter`` holds this.
"""
