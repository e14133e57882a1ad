using System.Buffers.Binary;
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
    /// <summary>Pending unit attentions kept per nexus; the oldest is dropped beyond this.</summary>
    public const int MaxUnitAttentionsPerNexus = 8;

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

    private readonly Lock _uaLock = new();
    private readonly Dictionary<ItNexus, Queue<SenseCode>> _unitAttentions = [];
    private int _unitAttentionCount;

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

    // ------------------------------------------------------------------ unit attentions

    /// <summary>Takes the oldest pending unit attention for the nexus, if any. An unbound path
    /// (null) has no identity to queue for and gets none.</summary>
    public bool TryTakeUnitAttention(ItNexus? nexus, out SenseCode code)
    {
        code = default;
        if (nexus is null || Volatile.Read(ref _unitAttentionCount) == 0) return false;
        lock (_uaLock)
        {
            if (!_unitAttentions.TryGetValue(nexus, out var queue)) return false;
            code = queue.Dequeue();
            _unitAttentionCount--;
            if (queue.Count == 0) _unitAttentions.Remove(nexus);
            return true;
        }
    }

    /// <summary>Queues a unit attention for every nexus of the volume (e.g. CAPACITY DATA HAS CHANGED):
    /// every bound path and every registrant, but <paramref name="except"/> (the nexus whose own
    /// command made the change, e.g. MODE SELECT, SPC-4 6.11: it knows already).</summary>
    public void AddUnitAttentionForAll(SenseCode code, ItNexus? except = null)
    {
        var targets = new HashSet<ItNexus>(_nexuses());
        foreach (var r in State.Registrations) targets.Add(r.Nexus);
        if (except is not null) targets.Remove(except);
        QueueUnitAttentions(targets.Select(n => (n, code)));
    }

    private void QueueUnitAttentions(IEnumerable<(ItNexus Nexus, SenseCode Code)> items)
    {
        lock (_uaLock)
        {
            foreach (var (nexus, code) in items)
            {
                if (!_unitAttentions.TryGetValue(nexus, out var queue))
                    _unitAttentions[nexus] = queue = new Queue<SenseCode>(2);
                if (queue.Contains(code)) continue; // one pending instance says it all
                if (queue.Count >= MaxUnitAttentionsPerNexus)
                {
                    queue.Dequeue(); // the newest reflects the current state best
                    _unitAttentionCount--;
                }
                queue.Enqueue(code);
                _unitAttentionCount++;
            }
        }
    }

    /// <summary>
    /// A power-on as <paramref name="nexus"/> sees it (SAM-5 unit attention POWER ON, RESET, OR
    /// BUS DEVICE RESET OCCURRED, 29h/00h): queued ahead of anything else pending for it, since a
    /// reset is the condition of highest precedence and tells the initiator that whatever it
    /// knew of the logical unit's state (SPC-2 reservations, unit attentions, mode pages) may
    /// be gone.
    /// </summary>
    public void PowerOnOccurred(ItNexus nexus)
    {
        var powerOn = SenseCode.PowerOnResetOrBusDeviceResetOccurred;
        lock (_uaLock)
        {
            _unitAttentions.TryGetValue(nexus, out var pending);
            var queue = new Queue<SenseCode>(2);
            queue.Enqueue(powerOn);
            int before = pending?.Count ?? 0;
            if (pending is not null)
                foreach (var code in pending)
                    if (code != powerOn && queue.Count < MaxUnitAttentionsPerNexus) queue.Enqueue(code);
            _unitAttentions[nexus] = queue;
            _unitAttentionCount += queue.Count - before;
        }
    }

    // ------------------------------------------------------------------ resets

    /// <summary>LUN RESET from <paramref name="nexus"/>: breaks SPC-2 reservations, keeps persistent ones
    /// (SPC-4 5.12.1: persistent reservations survive every reset).</summary>
    public void LunReset(ItNexus? nexus)
    {
        lock (_prLock)
        {
            var s = _state;
            if (s.Spc2Holder is null) return;
            Log.Info($"reservations: LUN reset by {nexus?.ToString() ?? "unbound path"} releases SPC-2 reservation of {s.Spc2Holder}");
            Publish(new StateBuilder(s) { Spc2Holder = null });
        }
    }

    /// <summary>
    /// A reset of the logical unit that arrived on <paramref name="nexus"/>'s path (LOGICAL UNIT
    /// RESET, or a TARGET WARM/COLD RESET reaching this logical unit): SPC-2 reservations are
    /// released (<see cref="LunReset"/>) and every other nexus of the volume gets
    /// <paramref name="unitAttention"/> (SAM-5 logical unit reset: a unit attention for every
    /// I_T nexus). The issuing nexus is left out: its own backstore's LUN reset raises it in
    /// the kernel, and a path is the only way to that nexus.
    /// </summary>
    public void ResetOccurred(ItNexus? nexus, SenseCode unitAttention)
    {
        LunReset(nexus);
        AddUnitAttentionForAll(unitAttention, except: nexus);
    }

    /// <summary>I_T nexus loss: releases an SPC-2 reservation held by the nexus (registrations stay).</summary>
    public void NexusLost(ItNexus nexus)
    {
        lock (_prLock)
        {
            var s = _state;
            if (s.Spc2Holder is null || !s.Spc2Holder.Equals(nexus)) return;
            Publish(new StateBuilder(s) { Spc2Holder = null });
        }
    }

    /// <summary>
    /// Call when a path was added or removed: republishes the snapshot so the gate finds the new
    /// path's nexus object by reference (its cheapest lookup). Correct without it, only slower.
    /// </summary>
    public void PathsChanged()
    {
        lock (_prLock)
            Publish(new StateBuilder(_state));
    }

    // ------------------------------------------------------------------ admin (tsvctl)

    /// <summary>The table as an administrator sees it.</summary>
    public ReservationSnapshot Snapshot()
    {
        var s = State;
        var regs = new RegistrationSnapshot[s.Registrations.Length];
        for (int i = 0; i < regs.Length; i++)
        {
            var r = s.Registrations[i];
            regs[i] = new RegistrationSnapshot(r.Nexus, r.Key, r.AllTargetPorts, s.IsHolder(i));
        }
        return new ReservationSnapshot(s.Generation, s.Aptpl, s.Type, s.Holder?.Nexus, regs, s.Spc2Holder);
    }

    /// <summary>
    /// Break-glass: drops every registration, the persistent reservation and any SPC-2 reservation,
    /// persists that, and gives every former registrant RESERVATIONS PREEMPTED (as CLEAR would).
    /// </summary>
    /// <exception cref="IOException">The cleared state could not be persisted; nothing changed.</exception>
    public void AdministrativeClear()
    {
        if (_cluster is not null)
        {
            ClusterAdministrativeClear();
            return;
        }
        lock (_prLock)
        {
            var s = _state;
            var b = new StateBuilder(s);
            b.Registrations.Clear();
            b.Release();
            b.Spc2Holder = null;
            b.Generation++;
            var next = b.Build(Bound());
            _store.Save(ToPersisted(next));
            Volatile.Write(ref _state, next);
            QueueUnitAttentions(s.Registrations.Select(r => (r.Nexus, SenseCode.ReservationsPreempted)));
            Log.Notice($"reservations: administrative clear dropped {s.Registrations.Length} registrations");
        }
    }

    // ------------------------------------------------------------------ PERSISTENT RESERVE IN

    private void PersistentReserveIn(ItNexus? issuer, ScsiCommand command)
    {
        _ = issuer; // PR IN works on unbound paths too: it reveals nothing nexus-specific
        var cdb = command.Cdb;
        if (cdb.Length < 10)
        {
            command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(0));
            return;
        }
        var s = State;
        if (s.Spc2Holder is not null) // docs/reservations.md §12, §13 (SPC-2 5.5.1)
        {
            command.ReservationConflict();
            return;
        }
        int allocation = BinaryPrimitives.ReadUInt16BigEndian(cdb.Slice(7));
        byte[] data;
        switch (cdb[1] & 0x1F)
        {
            case PrInAction.ReadKeys:
                data = new byte[8 + 8 * s.Registrations.Length];
                BinaryPrimitives.WriteUInt32BigEndian(data, s.Generation);
                BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), (uint)(8 * s.Registrations.Length));
                for (int i = 0; i < s.Registrations.Length; i++)
                    BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(8 + 8 * i), s.Registrations[i].Key);
                break;
            case PrInAction.ReadReservation:
                data = new byte[s.HasReservation ? 24 : 8];
                BinaryPrimitives.WriteUInt32BigEndian(data, s.Generation);
                if (s.HasReservation)
                {
                    BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), 16);
                    // AR types report key 0 (SPC-4 5.12.10); others the holder's current key.
                    BinaryPrimitives.WriteUInt64BigEndian(data.AsSpan(8), s.Holder?.Key ?? 0);
                    data[21] = (byte)s.Type; // scope LU_SCOPE (0) in bits 7-4
                }
                break;
            case PrInAction.ReportCapabilities:
                data = new byte[8];
                data[1] = 8;
                data[2] = 0x10 | 0x08 | 0x04 | 0x01; // CRH, SIP_C, ATP_C, PTPL_C; RLR_C=0
                // TMV; ALLOW COMMANDS 011b: TUR passes WE and EA, and MODE SENSE, READ ATTRIBUTE,
                // READ BUFFER, RECEIVE COPY RESULTS, RECEIVE DIAGNOSTIC RESULTS, REPORT SUPPORTED
                // OPERATION CODES / TMFs and READ DEFECT DATA pass WE: the gate's classes in
                // ReservationAccess keep this true. PTPL_A live.
                data[3] = (byte)(0x80 | (0b011 << 4) | (s.Aptpl ? 0x01 : 0x00));
                data[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
                data[5] = 0x01; // EX_AC_AR
                break;
            case PrInAction.ReadFullStatus:
                data = ReadFullStatus(s);
                break;
            default:
                command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
                return;
        }
        // Truncation to ALLOCATION LENGTH never changes the length fields (SPC-4 4.2.5.6).
        int n = (int)Math.Min(Math.Min(allocation, data.Length), command.Data.Length);
        command.Data.CopyFrom(0, data.AsSpan(0, n));
        command.Good(n);
    }

    private byte[] ReadFullStatus(ReservationState s)
    {
        var bound = Bound();
        using var ms = new MemoryStream();
        Span<byte> header = stackalloc byte[24];
        foreach (var (r, i) in s.Registrations.Select((r, i) => (r, i)))
        {
            // Report the ISID of the session that is bound now; fall back to the one seen at registration.
            var current = Array.Find(bound, n => n.Equals(r.Nexus));
            var tid = TransportIdWriter.Build(r.Nexus.Initiator, current?.Initiator.Isid ?? r.Nexus.Initiator.Isid);
            header.Clear();
            BinaryPrimitives.WriteUInt64BigEndian(header, r.Key);
            bool holder = s.IsHolder(i);
            header[12] = (byte)((r.AllTargetPorts ? 0x02 : 0) | (holder ? 0x01 : 0));
            if (holder) header[13] = (byte)s.Type;
            if (!r.AllTargetPorts)
                BinaryPrimitives.WriteUInt16BigEndian(header.Slice(18), r.Nexus.Target.RelativeTargetPortId);
            BinaryPrimitives.WriteUInt32BigEndian(header.Slice(20), (uint)tid.Length);
            ms.Write(header);
            ms.Write(tid);
        }
        var data = new byte[8 + ms.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, s.Generation);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4), (uint)ms.Length);
        ms.GetBuffer().AsSpan(0, (int)ms.Length).CopyTo(data.AsSpan(8));
        return data;
    }

    // ------------------------------------------------------------------ PERSISTENT RESERVE OUT

    private enum Verdict { Good, Conflict, Check }

    private readonly record struct Outcome(Verdict Verdict, SenseCode Sense = default, FieldPointer? Field = null)
    {
        public static readonly Outcome Good = new(Verdict.Good);
        public static readonly Outcome Conflict = new(Verdict.Conflict);
        public static Outcome Check(SenseCode sense, FieldPointer? field = null) => new(Verdict.Check, sense, field);

        public void Apply(ScsiCommand command)
        {
            switch (Verdict)
            {
                case Verdict.Good: command.Good(0); break;
                case Verdict.Conflict: command.ReservationConflict(); break;
                default: command.CheckCondition(Sense, Field); break;
            }
        }
    }

    /// <summary>What a PR OUT does besides changing the table, applied only after the commit.</summary>
    private sealed class Effects
    {
        public bool Changed;
        public readonly List<(ItNexus Nexus, SenseCode Code)> UnitAttentions = [];
        public readonly List<ItNexus> Preempted = [];
    }

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
                    return;
                }
            }
        }
        outcome.Apply(command);
    }

    private Outcome PersistentReserveOut(ReservationState s, StateBuilder b, Effects e, ItNexus issuer, ScsiCommand command)
    {
        var cdb = command.Cdb;
        byte action = (byte)(cdb[1] & 0x1F);
        int scope = cdb[2] >> 4;
        byte typeCode = (byte)(cdb[2] & 0x0F);
        uint listLength = BinaryPrimitives.ReadUInt32BigEndian(cdb.Slice(5));

        // Validation order of docs/reservations.md §3: which error wins matters to clients.
        if (s.Spc2Holder is not null)
            return Outcome.Conflict;
        if (action > PrOutAction.RegisterAndMove) // REPLACE LOST RESERVATION not implemented (RLR_C=0)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
        if (listLength < 24)
            return Outcome.Check(SenseCode.ParameterListLengthError);
        if (listLength > MaxParameterListLength)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(5));
        if (command.Data.Length < listLength) // the initiator sent less than the CDB announces
            return Outcome.Check(SenseCode.ParameterListLengthError);
        var p = new byte[listLength];
        command.Data.CopyTo(0, p);

        bool move = action == PrOutAction.RegisterAndMove;
        bool specIpt = !move && (p[20] & 0x08) != 0;
        bool allTgPt = !move && (p[20] & 0x04) != 0; // ignored by all but the REGISTER actions
        bool aptpl = move ? (p[17] & 0x01) != 0 : (p[20] & 0x01) != 0;
        if (!move && !specIpt && listLength != 24)
            return Outcome.Check(SenseCode.ParameterListLengthError);
        if (specIpt && action != PrOutAction.Register)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(20, 3));
        if (specIpt && listLength < 28)
            return Outcome.Check(SenseCode.ParameterListLengthError);

        ulong key = BinaryPrimitives.ReadUInt64BigEndian(p);
        ulong serviceActionKey = BinaryPrimitives.ReadUInt64BigEndian(p.AsSpan(8));
        int index = b.IndexOf(issuer);
        bool registered = index >= 0;

        if (!registered && action is PrOutAction.Reserve or PrOutAction.Release or PrOutAction.Clear
                or PrOutAction.Preempt or PrOutAction.PreemptAndAbort or PrOutAction.RegisterAndMove)
            return Outcome.Conflict;
        if (scope != 0 && action is PrOutAction.Reserve or PrOutAction.Release or PrOutAction.Preempt or PrOutAction.PreemptAndAbort)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(2, 7));
        if (!PersistentReservationTypes.IsValid(typeCode) && action is PrOutAction.Reserve or PrOutAction.Preempt or PrOutAction.PreemptAndAbort)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(2, 3));
        if (action != PrOutAction.RegisterAndIgnoreExistingKey)
        {
            ulong expected = registered ? b.Registrations[index].Key : 0;
            if (key != expected)
                return Outcome.Conflict;
        }

        var type = (PersistentReservationType)typeCode;
        return action switch
        {
            PrOutAction.Register or PrOutAction.RegisterAndIgnoreExistingKey =>
                Register(b, e, issuer, serviceActionKey, allTgPt, aptpl, specIpt, p),
            PrOutAction.Reserve => Reserve(b, e, issuer, type),
            PrOutAction.Release => Release(b, e, issuer, type),
            PrOutAction.Clear => Clear(b, e, issuer),
            PrOutAction.Preempt or PrOutAction.PreemptAndAbort =>
                Preempt(b, e, issuer, type, serviceActionKey, action == PrOutAction.PreemptAndAbort),
            _ => RegisterAndMove(b, e, issuer, serviceActionKey, aptpl, p),
        };
    }

    /// <summary>REGISTER / REGISTER AND IGNORE EXISTING KEY (SPC-4 5.12.7, docs/reservations.md §4).</summary>
    private Outcome Register(StateBuilder b, Effects e, ItNexus issuer, ulong serviceActionKey,
        bool allTgPt, bool aptpl, bool specIpt, byte[] p)
    {
        int index = b.IndexOf(issuer);
        if (index < 0)
        {
            if (serviceActionKey == 0)
                return Outcome.Good; // nothing to do: no registration, no PRgeneration change

            var bound = Bound();
            var add = new List<Registration>();
            void Add(ItNexus n)
            {
                if (b.IndexOf(n) < 0 && !add.Exists(r => r.Nexus.Equals(n)))
                    add.Add(new Registration(n, serviceActionKey, allTgPt));
            }
            Add(issuer);
            if (allTgPt)
                foreach (var n in bound)
                    if (n.Initiator.Equals(issuer.Initiator)) Add(n);

            if (specIpt)
            {
                uint tidLength = BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(24));
                if (28L + tidLength != p.Length)
                    return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(24));
                var reader = new TransportIdReader(p.AsSpan(28));
                while (!reader.End)
                {
                    if (!reader.TryRead(out var tid))
                        return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(28));
                    // The named initiator port is registered through the receiving target port,
                    // or through every target port it reaches with ALL_TG_PT (SPC-4 6.16.3).
                    bool any = false;
                    foreach (var n in bound)
                    {
                        if (!tid.Matches(n.Initiator) || !(allTgPt || n.Target.Equals(issuer.Target))) continue;
                        Add(n);
                        any = true;
                    }
                    if (!any)
                        return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(28));
                }
            }
            // All or nothing (SPC-4 6.16.3): nothing was added to the table yet.
            if (b.Registrations.Count + add.Count > MaxRegistrations)
                return Outcome.Check(SenseCode.InsufficientRegistrationResources);
            b.Registrations.AddRange(add);
        }
        else
        {
            if (specIpt)
                return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(20, 3));
            var own = b.Registrations[index];
            // A registration made with ALL_TG_PT speaks for its copies on the other target ports.
            var group = new List<int>();
            for (int i = 0; i < b.Registrations.Count; i++)
            {
                var r = b.Registrations[i];
                if (i == index || (own.AllTargetPorts && r.AllTargetPorts && r.Key == own.Key && r.Nexus.Initiator.Equals(own.Nexus.Initiator)))
                    group.Add(i);
            }
            if (serviceActionKey != 0)
            {
                foreach (int i in group)
                    b.Registrations[i] = b.Registrations[i] with { Key = serviceActionKey };
            }
            else
            {
                var type = b.Type;
                bool holderLeaves = type != PersistentReservationType.None && !type.IsAllRegistrants()
                    && group.Exists(i => b.Registrations[i].Nexus.Equals(b.HolderNexus));
                for (int g = group.Count - 1; g >= 0; g--)
                    b.Registrations.RemoveAt(group[g]);
                if (holderLeaves)
                {
                    // Implicit release (SPC-4 5.12.11.2.2); only RO types tell the others.
                    b.Release();
                    if (type.IsRegistrantsType())
                        foreach (var r in b.Registrations)
                            e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsReleased));
                }
                else if (type.IsAllRegistrants() && b.Registrations.Count == 0)
                    b.Release(); // the last registrant of an AR reservation took it along
            }
        }
        b.Generation++;
        b.Aptpl = aptpl;
        e.Changed = true;
        return Outcome.Good;
    }

    /// <summary>RESERVE (docs/reservations.md §5); no PRgeneration change.</summary>
    private static Outcome Reserve(StateBuilder b, Effects e, ItNexus issuer, PersistentReservationType type)
    {
        if (b.Type == PersistentReservationType.None)
        {
            b.Type = type;
            b.HolderNexus = type.IsAllRegistrants() ? null : issuer;
            e.Changed = true;
            return Outcome.Good;
        }
        // Under AR any registrant is a holder, so a second registrant's same-type RESERVE is GOOD (docs/reservations.md §5).
        return b.IsHolder(issuer) && b.Type == type ? Outcome.Good : Outcome.Conflict;
    }

    /// <summary>RELEASE (docs/reservations.md §6); no PRgeneration change.</summary>
    private static Outcome Release(StateBuilder b, Effects e, ItNexus issuer, PersistentReservationType type)
    {
        if (b.Type == PersistentReservationType.None || !b.IsHolder(issuer))
            return Outcome.Good;
        if (b.Type != type)
            return Outcome.Check(SenseCode.InvalidReleaseOfPersistentReservation);
        var old = b.Type;
        b.Release();
        e.Changed = true;
        if (old.IsRegistrantsType())
            foreach (var r in b.Registrations)
                if (!r.Nexus.Equals(issuer))
                    e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsReleased));
        return Outcome.Good;
    }

    /// <summary>CLEAR (docs/reservations.md §7).</summary>
    private static Outcome Clear(StateBuilder b, Effects e, ItNexus issuer)
    {
        foreach (var r in b.Registrations)
            if (!r.Nexus.Equals(issuer))
                e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsPreempted));
        b.Registrations.Clear();
        b.Release();
        b.Generation++;
        e.Changed = true;
        return Outcome.Good;
    }

    /// <summary>PREEMPT / PREEMPT AND ABORT, cases A-F of docs/reservations.md §8 (and §9).</summary>
    private static Outcome Preempt(StateBuilder b, Effects e, ItNexus issuer, PersistentReservationType type,
        ulong serviceActionKey, bool abort)
    {
        var removed = new List<ItNexus>();
        // Removes registrations by predicate; the issuer only when keepIssuer is false.
        void Remove(Func<Registration, bool> which, bool keepIssuer)
        {
            for (int i = b.Registrations.Count - 1; i >= 0; i--)
            {
                var r = b.Registrations[i];
                if (!which(r) || (keepIssuer && r.Nexus.Equals(issuer))) continue;
                removed.Add(r.Nexus);
                b.Registrations.RemoveAt(i);
            }
            removed.Reverse();
        }
        bool matchesAny = b.Registrations.Exists(r => r.Key == serviceActionKey);
        var oldType = b.Type;
        bool reservationChanged = false;

        if (oldType == PersistentReservationType.None)
        {
            if (serviceActionKey == 0) // case B
                return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(8));
            if (!matchesAny)
                return Outcome.Conflict;
            // Case A: every registration with that key goes, the issuer's too (self-preempt
            // without a reservation; fence_scsi re-registers afterwards, docs/reservations.md §8).
            Remove(r => r.Key == serviceActionKey, keepIssuer: false);
        }
        else if (!oldType.IsAllRegistrants())
        {
            if (serviceActionKey == 0) // case B
                return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(8));
            ulong holderKey = b.Registrations[b.IndexOf(b.HolderNexus!)].Key;
            if (serviceActionKey == holderKey)
            {
                // Case C: the reservation goes to the issuer, who keeps its registration.
                Remove(r => r.Key == serviceActionKey, keepIssuer: true);
                b.Type = type;
                b.HolderNexus = type.IsAllRegistrants() ? null : issuer;
                reservationChanged = oldType != type;
            }
            else
            {
                if (!matchesAny) return Outcome.Conflict;
                Remove(r => r.Key == serviceActionKey, keepIssuer: false); // case D
            }
        }
        else if (serviceActionKey == 0)
        {
            // Case E: everyone but the issuer goes; the issuer holds a new reservation.
            Remove(_ => true, keepIssuer: true);
            b.Type = type;
            b.HolderNexus = type.IsAllRegistrants() ? null : issuer;
            reservationChanged = oldType != type;
        }
        else
        {
            if (!matchesAny) return Outcome.Conflict;
            Remove(r => r.Key == serviceActionKey, keepIssuer: true); // case F
        }

        foreach (var n in removed)
            if (!n.Equals(issuer))
            {
                e.UnitAttentions.Add((n, SenseCode.RegistrationsPreempted));
                if (abort) e.Preempted.Add(n);
            }
        if (reservationChanged)
            foreach (var r in b.Registrations)
                if (!r.Nexus.Equals(issuer))
                    e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsReleased));
        b.Generation++;
        e.Changed = true;
        return Outcome.Good;
    }

    /// <summary>REGISTER AND MOVE (docs/reservations.md §10).</summary>
    private Outcome RegisterAndMove(StateBuilder b, Effects e, ItNexus issuer, ulong serviceActionKey, bool aptpl, byte[] p)
    {
        if (b.Type == PersistentReservationType.None)
            return Outcome.Check(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
        if (b.Type.IsAllRegistrants() || !b.IsHolder(issuer))
            return Outcome.Conflict;
        if (serviceActionKey == 0)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(8));
        bool unregister = (p[17] & 0x02) != 0;
        ushort rtpi = BinaryPrimitives.ReadUInt16BigEndian(p.AsSpan(18));
        uint tidLength = BinaryPrimitives.ReadUInt32BigEndian(p.AsSpan(20));
        if (24L + tidLength != p.Length)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(20));
        var reader = new TransportIdReader(p.AsSpan(24));
        if (!reader.TryRead(out var tid) || !reader.End)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(24));
        var destination = Array.Find(Bound(), n => tid.Matches(n.Initiator) && n.Target.RelativeTargetPortId == rtpi);
        if (destination is null)
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(18));
        if (destination.Equals(issuer))
            return Outcome.Check(SenseCode.InvalidFieldInParameterList, FieldPointer.Parameter(24));

        int d = b.IndexOf(destination);
        if (d >= 0)
            b.Registrations[d] = b.Registrations[d] with { Key = serviceActionKey };
        else if (b.Registrations.Count + 1 > MaxRegistrations)
            return Outcome.Check(SenseCode.InsufficientRegistrationResources);
        else
            b.Registrations.Add(new Registration(destination, serviceActionKey, false));
        // Type and scope move with the reservation (docs/reservations.md §10; LIO writes the type into the scope).
        b.HolderNexus = destination;
        if (unregister)
            b.Registrations.RemoveAt(b.IndexOf(issuer));
        b.Generation++;
        b.Aptpl = aptpl;
        e.Changed = true;
        return Outcome.Good;
    }

    // ------------------------------------------------------------------ SPC-2 RESERVE / RELEASE

    private void Spc2ReserveRelease(ItNexus? issuer, ScsiCommand command, bool reserve)
    {
        var cdb = command.Cdb;
        if (issuer is null)
        {
            command.CheckCondition(UnboundPathSense);
            return;
        }
        if (_cluster is not null)
        {
            Spc2NotInCluster(command);
            return;
        }
        // RESERVE(10)/RELEASE(10) third-party reservations (3RDPTY, byte 1 bit 4) are not supported.
        if (cdb.Length >= 10 && cdb[0] is OperationCode.Reserve10 or OperationCode.Release10 && (cdb[1] & 0x10) != 0)
        {
            command.CheckCondition(SenseCode.InvalidFieldInCdb, FieldPointer.Cdb(1, 4));
            return;
        }
        lock (_prLock)
        {
            var s = _state;
            if (s.HasReservation)
            {
                // CRH=1 (SPC-4 5.12.3): a PR holder, or a registrant under an RO/AR reservation,
                // gets GOOD and nothing changes.
                int index = s.IndexOf(issuer);
                if (s.IsHolder(index) || (index >= 0 && s.Type.IsRegistrantsType()))
                {
                    command.Good(0);
                    return;
                }
            }
            // Otherwise SPC-2 rules apply, and they conflict with any registration (SPC-2 5.5.1).
            if (s.Registrations.Length > 0)
            {
                command.ReservationConflict();
                return;
            }
            if (reserve)
            {
                if (s.Spc2Holder is not null && !s.Spc2Holder.Equals(issuer))
                {
                    command.ReservationConflict();
                    return;
                }
                if (s.Spc2Holder is null)
                    Publish(new StateBuilder(s) { Spc2Holder = issuer });
            }
            else if (s.Spc2Holder is not null && s.Spc2Holder.Equals(issuer))
                Publish(new StateBuilder(s) { Spc2Holder = null });
            // RELEASE by a non-holder is GOOD and changes nothing (SPC-2 7.17).
        }
        command.Good(0);
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

/// <summary>One registration as tsvctl shows it.</summary>
public sealed record RegistrationSnapshot(ItNexus Nexus, ulong Key, bool AllTargetPorts, bool IsHolder);

/// <summary>A volume's reservation table as tsvctl shows it.</summary>
public sealed record ReservationSnapshot(
    uint Generation,
    bool Aptpl,
    PersistentReservationType Type,
    ItNexus? Holder,
    IReadOnlyList<RegistrationSnapshot> Registrations,
    ItNexus? Spc2Holder);
