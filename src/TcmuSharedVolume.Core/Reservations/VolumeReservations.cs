using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>
/// The reservation table of one volume, shared by all of its paths: SPC-4 persistent
/// reservations, SPC-2 RESERVE/RELEASE and the unit attentions they raise.
/// PR OUT, RESERVE and RELEASE are serialised by one lock; the gate (<see cref="IsAllowed"/>)
/// reads an immutable <see cref="ReservationState"/> published with a volatile write, so it
/// takes no lock and allocates nothing. The rules are those of docs/reservations.md (§1–§14),
/// not LIO's where the two differ.
/// </summary>
public sealed partial class VolumeReservations
{
    /// <summary>Largest PR OUT parameter list accepted (SPEC_I_PT with hundreds of TransportIDs fits).</summary>
    public const int MaxParameterListLength = 1 << 20;

    /// <summary>
    /// PR OUT/RESERVE/RELEASE on a path that is not bound to exactly one initiator: NOT READY,
    /// LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED (04h/03h). Not RESERVATION CONFLICT
    /// (fence_scsi would read "I am fenced"), not INVALID COMMAND OPERATION CODE (tools would
    /// conclude the LU has no PR support, while other paths have it); it says what is true: the
    /// operator must fix the path's binding. Linux does not retry 04h/03h, so it fails fast.
    /// </summary>
    public static readonly SenseCode UnboundPathSense = new(SenseKey.NotReady, 0x04, 0x03);

    /// <summary>
    /// The new state could not be made durable: HARDWARE ERROR, INTERNAL TARGET FAILURE (44h/00h).
    /// The table is unchanged, so a client retry is safe; NOT READY would make initiators retry
    /// blindly, and LIO's LOGICAL UNIT COMMUNICATION FAILURE suggests a transport problem.
    /// </summary>
    public static readonly SenseCode PersistFailureSense = SenseCode.InternalTargetFailure;

    /// <summary>
    /// Default of <see cref="AbortDrainTimeout"/>: well under the 30 s that both LIO's TCMU
    /// cmd_time_out and Linux sd give a command, so that the PREEMPT AND ABORT itself is answered
    /// (with an error) before the kernel or the initiator times it out.
    /// </summary>
    public static readonly TimeSpan DefaultAbortDrainTimeout = TimeSpan.FromSeconds(20);

    /// <summary>
    /// PREEMPT AND ABORT whose preempted nexuses still have commands running at the deadline:
    /// HARDWARE ERROR, INTERNAL TARGET FAILURE (44h/00h). Their writes may still land, so the
    /// preemptor must not be told GOOD. The new table stays in force (it already refuses every
    /// new command of the preempted nexuses; putting the old one back would let them write
    /// again): a retry gets RESERVATION CONFLICT for the key that is gone, and a fence agent
    /// escalates instead of believing the node is fenced. Not retried by initiators on its own.
    /// </summary>
    public static readonly SenseCode AbortDrainTimeoutSense = SenseCode.InternalTargetFailure;

    /// <summary>How long PREEMPT AND ABORT waits for the preempted nexuses' commands to finish
    /// (per volume: cfgstring <c>abort_timeout=</c>). Keep it below the initiators' command timeout.</summary>
    public TimeSpan AbortDrainTimeout { get; set; } = DefaultAbortDrainTimeout;

    private readonly IReservationStore _store;
    private readonly Func<IEnumerable<ItNexus>> _nexuses;
    private readonly ICommandDrain _drain;
    private readonly Lock _prLock = new();
    private ReservationState _state;


    /// <param name="nexuses">The bound nexuses of the volume's paths, now (for SPEC_I_PT, ALL_TG_PT, REGISTER AND MOVE).</param>
    /// <exception cref="ReservationStoreException">The stored state exists but is unreadable.</exception>
    public VolumeReservations(IReservationStore store, Func<IEnumerable<ItNexus>> nexuses, ICommandDrain drain)
    {
        _store = store;
        _nexuses = nexuses;
        _drain = drain;
        _state = FromPersisted(store.Load());
    }

    /// <summary>Registration table limit; beyond it INSUFFICIENT REGISTRATION RESOURCES (55h/04h).</summary>
    internal int MaxRegistrations { get; set; } = 4096;

    internal ReservationState State => Volatile.Read(ref _state);

    /// <summary>The nexus holding an SPC-2 (RESERVE(6/10)) reservation, if any. No lock.</summary>
    public ItNexus? Spc2Holder => Volatile.Read(ref _state).Spc2Holder;

    // ------------------------------------------------------------------ dispatch

    /// <summary>PERSISTENT RESERVE IN/OUT, RESERVE(6/10), RELEASE(6/10) from <paramref name="issuer"/>.</summary>
    public void Execute(ItNexus? issuer, ScsiCommand command)
    {
        switch (command.OperationCode)
        {
            case OperationCode.PersistentReserveIn:
                PersistentReserveIn(issuer, command);
                break;
            case OperationCode.PersistentReserveOut:
                PersistentReserveOut(issuer, command);
                break;
            case OperationCode.Reserve6 or OperationCode.Reserve10:
                Spc2ReserveRelease(issuer, command, reserve: true);
                break;
            case OperationCode.Release6 or OperationCode.Release10:
                Spc2ReserveRelease(issuer, command, reserve: false);
                break;
            default:
                command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));
                break;
        }
    }

    /// <summary>The reservation gate: may this nexus run this CDB now? Hot path: no lock, no allocation.
    /// Reservation commands themselves are judged by <see cref="Execute"/>.</summary>
    public bool IsAllowed(ItNexus? nexus, ReadOnlySpan<byte> cdb)
    {
        if (cdb.IsEmpty) return true;
        var s = Volatile.Read(ref _state);
        if (s.Spc2Holder is { } spc2)
        {
            if (nexus is not null && (ReferenceEquals(spc2, nexus) || spc2.Equals(nexus))) return true;
            ReservationAccess.Classify(cdb, out bool pass);
            return pass;
        }
        if (s.Type == PersistentReservationType.None) return true;
        var access = ReservationAccess.Classify(cdb, out _);
        if (access == AccessClass.Allowed) return true;
        int index = s.IndexOf(nexus);
        return ReservationAccess.IsAllowed(access, s.Type, s.IsHolder(index), index >= 0);
    }

    // ------------------------------------------------------------------ commit (PR OUT)

    private void PersistentReserveOut(ItNexus? issuer, ScsiCommand command)
    {
        var cdb = command.Cdb;
        if (cdb.Length < 10)
        {
            command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(0));
            return;
        }
        if (issuer is null)
        {
            command.CheckCondition(UnboundPathSense);
            return;
        }
        if (_cluster is not null)
        {
            ClusterPersistentReserveOut(issuer, command);
            return;
        }

        Effects effects = new();
        Outcome outcome;
        lock (_prLock)
        {
            var s = _state;
            var b = new StateBuilder(s);
            outcome = PersistentReserveOut(s, b, effects, issuer, command);
            if (outcome.Verdict == Verdict.Good && effects.Changed)
            {
                var next = b.Build(Bound());
                try
                {
                    _store.Save(ToPersisted(next));
                }
                catch (Exception e)
                {
                    Log.Error($"reservations: persisting PR OUT from {issuer} failed, table unchanged: {e.Message}");
                    // The write may have reached the disk (e.g. only the directory fsync failed):
                    // put the unchanged state back so a restart cannot resurrect the refused change.
                    try { _store.Save(ToPersisted(s)); }
                    catch (Exception e2) { Log.Error($"reservations: restoring the previous state failed too: {e2.Message}"); }
                    command.CheckCondition(PersistFailureSense);
                    AuditPrOut(issuer, command, s, s, ReservationResult.PersistFailed);
                    return;
                }
                // Committed: publish first, so that the gate already refuses preempted nexuses
                // while we wait for their commands in flight (docs/reservations.md §9).
                Volatile.Write(ref _state, next);
                QueueUnitAttentions(effects.UnitAttentions);
                // We only drain (commands that passed the gate finish normally); nothing is
                // aborted, so no COMMANDS CLEARED BY ANOTHER INITIATOR unit attention is due.
                if (effects.Preempted.Count > 0 && !_drain.DrainCommands(effects.Preempted, AbortDrainTimeout))
                {
                    Log.Error($"reservations: PREEMPT AND ABORT from {issuer}: commands of {string.Join(", ", effects.Preempted)} " +
                        $"still running after {AbortDrainTimeout.TotalSeconds:0.#} s (backing store not answering); " +
                        "failed with HARDWARE ERROR, the preemption stays in force and their writes may still land");
                    command.CheckCondition(AbortDrainTimeoutSense);
                    AuditPrOut(issuer, command, s, next, ReservationResult.AbortTimeout);
                    return;
                }
            }
            if (outcome.Verdict != Verdict.Check)
                AuditPrOut(issuer, command, s, _state, outcome.Verdict == Verdict.Good ? ReservationResult.Good : ReservationResult.Conflict);
        }
        outcome.Apply(command);
    }

    // ------------------------------------------------------------------ helpers

    private ItNexus[] Bound() => _nexuses().ToArray();

    /// <summary>Publishes a change that needs no persistence (SPC-2 state). Caller holds the lock.</summary>
    private void Publish(StateBuilder b) => Volatile.Write(ref _state, b.Build(Bound()));

    private static PersistedReservations ToPersisted(ReservationState s) =>
        new(s.Aptpl, s.Registrations, s.Type, s.HolderIndex);

    private static ReservationState FromPersisted(PersistedReservations? p)
    {
        if (p is null) return ReservationState.Empty;
        var regs = p.Registrations.ToArray();
        if (p.Type != PersistentReservationType.None && !p.Type.IsAllRegistrants() && (uint)p.HolderIndex >= (uint)regs.Length)
            throw new ReservationStoreException($"stored reservation of type {p.Type} names registration {p.HolderIndex}, but there are {regs.Length}");
        // PRgeneration restarts at 0 after a restart (SPC-4 5.12.3), whatever APTPL says.
        return new ReservationState(regs, p.Type, p.HolderIndex, 0, p.Aptpl, null, []);
    }
}
