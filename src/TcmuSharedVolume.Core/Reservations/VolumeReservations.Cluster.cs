using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>
/// One table for a volume that several target hosts serve (docs/reservations.md §18). The rules
/// are the same pure decisions; what differs is the commit: a guarded write of the shared table
/// (a lost race loads the newer table and decides again), then every other host applies the
/// change and drains before the issuer's GOOD, or it is fenced. Changes from other hosts arrive
/// through <see cref="ApplyClusterTable"/>. The gate is untouched: it reads the same cached state.
/// </summary>
public sealed partial class VolumeReservations
{
    /// <summary>
    /// This host cannot reach the shared table now (the cluster fenced it, or it is rejoining):
    /// NOT READY, LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE (04h/00h), which multipath
    /// retries on another host's path. Nothing was changed.
    /// </summary>
    public static readonly SenseCode ClusterUnavailableSense = SenseCode.LogicalUnitNotReadyCauseNotReportable;

    /// <summary>
    /// The change was committed but some other host neither acknowledged it nor could be fenced:
    /// HARDWARE ERROR, INTERNAL TARGET FAILURE (44h/00h). As for <see cref="AbortDrainTimeoutSense"/>
    /// the new table stays in force; the issuer must not believe that the others are fenced.
    /// </summary>
    public static readonly SenseCode ClusterFenceFailureSense = SenseCode.InternalTargetFailure;

    /// <summary>Lost races in a row before giving up; each one means another host made progress.</summary>
    private const int MaxCommitAttempts = 64;

    private readonly IClusterReservationStore? _cluster;
    private ulong _clusterVersion; // under _prLock
    // Changes from other hosts wait until the constructor has loaded the table it joined with.
    private readonly ManualResetEventSlim _joined = new();

    /// <summary>
    /// A table shared with other hosts through <paramref name="cluster"/>, followed from now on.
    /// The unit attentions of the changes made since this host last served the volume are
    /// queued for its nexuses (docs/reservations.md §18, <see cref="TableChangeEffects.Missed"/>).
    /// </summary>
    public VolumeReservations(IClusterReservationStore cluster, Func<IEnumerable<ItNexus>> nexuses, ICommandDrain drain)
        : this(NoLocalStore.Instance, nexuses, drain)
    {
        _cluster = cluster;
        try
        {
            var last = cluster.LastKnown();
            var table = cluster.Join(ApplyClusterTable);
            lock (_prLock)
            {
                // A remembered table newer than the shared one belongs to an earlier life of the
                // object (the image was deleted and made again): nothing to compare with.
                if (last is not null && last.Version <= table.Version) LoadClusterTable(last with { Change = TableChangeEffects.None });
                LoadClusterTable(table);
            }
        }
        finally
        {
            _joined.Set();
        }
    }

    /// <summary>Whether the table is shared with other hosts (no SPC-2 RESERVE/RELEASE then).</summary>
    public bool IsShared => _cluster is not null;

    /// <summary>The version of the shared table this host decides on; 0 for a table kept by this host alone.</summary>
    public ulong ClusterVersion
    {
        get { lock (_prLock) return _clusterVersion; }
    }

    /// <summary>
    /// A change another host committed, or the table read again after this host rejoined:
    /// loads it unless this host already has it or a newer one, raising the unit attentions it
    /// owes (docs/reservations.md §18, step 3: each host for its own nexuses; a nexus exists on
    /// one host only, so queueing them all is the same), then drains the preempted nexuses'
    /// commands that passed the gate here. True when done; false leaves the change
    /// unacknowledged, so the issuer fences this host.
    /// </summary>
    private bool ApplyClusterTable(ClusterTable table)
    {
        _joined.Wait();
        lock (_prLock) LoadClusterTable(table);
        if (table.Change.Preempted.Count == 0 || _drain.DrainCommands(table.Change.Preempted, AbortDrainTimeout))
            return true;
        Log.Error($"reservations: shared table version {table.Version}: commands of {string.Join(", ", table.Change.Preempted)} " +
            $"still running after {AbortDrainTimeout.TotalSeconds:0.#} s; not acknowledging, so the issuer fences this host");
        return false;
    }

    /// <summary>
    /// Caller holds _prLock. Older or equal versions are ignored: notifications may trail a
    /// re-read. The next version raises its own change's unit attentions; a later one (this host
    /// missed changes: it was fenced, or stopped) those that the difference between the two
    /// tables shows (<see cref="TableChangeEffects.Missed"/>).
    /// </summary>
    private void LoadClusterTable(ClusterTable table)
    {
        if (table.Version <= _clusterVersion) return;
        var p = table.Reservations;
        var owed = table.Version == _clusterVersion + 1
            ? table.Change.UnitAttentions
            : TableChangeEffects.Missed(ToPersisted(_state), p);
        if (owed.Count > 0 && table.Version != _clusterVersion + 1)
            Log.Info($"reservations: shared table went from version {_clusterVersion} to {table.Version} while this host was away; " +
                $"{owed.Count} unit attention(s) owed: {string.Join(", ", owed.Select(o => $"{o.Code} for {o.Nexus}"))}");
        _clusterVersion = table.Version;
        Volatile.Write(ref _state, new ReservationState([.. p.Registrations], p.Type, p.HolderIndex, table.Generation, p.Aptpl,
            _state.Spc2Holder, Bound()));
        QueueUnitAttentions(owed);
    }

    private delegate Outcome Decision(ReservationState s, StateBuilder b, Effects e);

    /// <summary>
    /// What <see cref="CommitToCluster"/> decided and did: the table decided on and the one in
    /// force after, the change committed (null: nothing was written), and what the audit trail
    /// records (null: a malformed command, nothing to record) with the table version it names.
    /// </summary>
    private readonly record struct ClusterCommit(Outcome Outcome, Effects Effects, ReservationState Before, ReservationState After,
        ClusterTable? Committed, ReservationResult? Result, ulong Version);

    /// <summary>
    /// A PR OUT on a shared table. Audited as on one host (docs/operations.md §12), by the host
    /// that received it, once the change is settled: its result is known only then. Records of
    /// changes settled at once may therefore be written in either order; GENERATION and
    /// TABLE_VERSION order them.
    /// </summary>
    private void ClusterPersistentReserveOut(ItNexus issuer, ScsiCommand command)
    {
        var c = CommitToCluster((s, b, e) => PersistentReserveOut(s, b, e, issuer, command));
        var result = c.Result;
        SenseCode? failure = c.Committed is null ? null : SettleClusterChange(c.Effects, c.Committed, $"PR OUT from {issuer}", out result);
        if (result is { } recorded) AuditPrOut(issuer, command, c.Before, c.After, recorded, c.Version);
        if (failure is { } sense) command.CheckCondition(sense);
        else c.Outcome.Apply(command);
    }

    /// <summary>tsvctl pr clear on a shared table: as <see cref="AdministrativeClear"/>, for every host.</summary>
    private void ClusterAdministrativeClear()
    {
        var c = CommitToCluster((s, b, e) =>
        {
            foreach (var r in s.Registrations) e.UnitAttentions.Add((r.Nexus, SenseCode.ReservationsPreempted));
            b.Registrations.Clear();
            b.Release();
            b.Generation++;
            e.Changed = true;
            return Outcome.Good;
        });
        if (c.Committed is null)
            throw new IOException($"the shared reservation table could not be cleared ({c.Outcome.Sense}); nothing changed");
        var failure = SettleClusterChange(c.Effects, c.Committed, "administrative clear", out _);
        AuditChange(ReservationAction.AdministrativeClear, null, c.Before, c.After, c.Committed.Version);
        if (failure is not null)
            throw new IOException($"the shared reservation table was cleared (version {c.Committed.Version}), but not every host confirmed it");
        Log.Notice($"reservations: administrative clear dropped {c.Before.Registrations.Length} registrations of the shared table (version {c.Committed.Version})");
    }

    /// <summary>
    /// docs/reservations.md §18 step 1: decide on the cached table, commit with a guarded write; a lost race
    /// loads the newer table and decides again, where the command may now conflict or do
    /// something else. On success the table is already in force here (the gate refuses what it
    /// took away) and its unit attentions are queued.
    /// </summary>
    private ClusterCommit CommitToCluster(Decision decide)
    {
        lock (_prLock)
        {
            for (int attempt = 1; ; attempt++)
            {
                var s = _state;
                var b = new StateBuilder(s);
                var effects = new Effects();
                var outcome = decide(s, b, effects);
                if (outcome.Verdict != Verdict.Good || !effects.Changed)
                {
                    ReservationResult? judged = outcome.Verdict switch
                    {
                        Verdict.Good => ReservationResult.Good,
                        Verdict.Conflict => ReservationResult.Conflict,
                        _ => null,
                    };
                    return new ClusterCommit(outcome, effects, s, s, null, judged, _clusterVersion);
                }
                if (attempt > MaxCommitAttempts)
                {
                    Log.Error($"reservations: shared table changed by other hosts {MaxCommitAttempts} times in a row while deciding; giving up");
                    return new ClusterCommit(Outcome.Check(PersistFailureSense), effects, s, s, null, ReservationResult.PersistFailed, _clusterVersion);
                }
                var next = b.Build(Bound());
                var table = new ClusterTable(_clusterVersion + 1, next.Generation, ToPersisted(next),
                    new TableChangeEffects([.. effects.UnitAttentions], [.. effects.Preempted]));
                try
                {
                    if (!_cluster!.TryCommit(table, out var current))
                    {
                        LoadClusterTable(current);
                        continue;
                    }
                }
                catch (ClusterTableUnavailableException e)
                {
                    Log.Warning($"reservations: shared table unavailable, table unchanged: {e.Message}");
                    return new ClusterCommit(Outcome.Check(ClusterUnavailableSense), effects, s, s, null, ReservationResult.PersistFailed, _clusterVersion);
                }
                catch (Exception e)
                {
                    Log.Error($"reservations: committing the shared table failed, table unchanged: {e.Message}");
                    return new ClusterCommit(Outcome.Check(PersistFailureSense), effects, s, s, null, ReservationResult.PersistFailed, _clusterVersion);
                }
                _clusterVersion = table.Version;
                Volatile.Write(ref _state, next);
                QueueUnitAttentions(effects.UnitAttentions);
                return new ClusterCommit(outcome, effects, s, next, table, ReservationResult.Good, table.Version);
            }
        }
    }

    /// <summary>
    /// docs/reservations.md §18 steps 2-4, outside the lock (the other hosts' apply takes theirs, and one of
    /// them may be waiting on this host's ack at the same time): drain this host's preempted
    /// commands, then announce and wait for every other host to apply or be fenced. Every
    /// change waits, those that only add access too: the conservative choice (docs/reservations.md
    /// §18). Returns the sense to fail with, or null for GOOD.
    /// </summary>
    private SenseCode? SettleClusterChange(Effects effects, ClusterTable committed, string what, out ReservationResult? result)
    {
        result = ReservationResult.Good;
        bool drained = effects.Preempted.Count == 0 || _drain.DrainCommands(effects.Preempted, AbortDrainTimeout);
        bool everyone;
        try { everyone = _cluster!.Announce(committed); }
        catch (Exception e)
        {
            Log.Error($"reservations: announcing shared table version {committed.Version} failed: {e.Message}");
            everyone = false;
        }
        if (!drained)
        {
            Log.Error($"reservations: {what}: commands of {string.Join(", ", effects.Preempted)} still running after " +
                $"{AbortDrainTimeout.TotalSeconds:0.#} s; failed with HARDWARE ERROR, the preemption stays in force");
            result = ReservationResult.AbortTimeout;
            return AbortDrainTimeoutSense;
        }
        if (!everyone)
        {
            Log.Error($"reservations: {what}: shared table version {committed.Version} is committed, but a host neither " +
                "acknowledged it nor could be fenced; failed with HARDWARE ERROR, the change stays in force");
            result = ReservationResult.NotConfirmed;
            return ClusterFenceFailureSense;
        }
        return null;
    }

    /// <summary>
    /// SPC-2 RESERVE/RELEASE on a shared table: not supported yet. INVALID COMMAND OPERATION
    /// CODE, the truth, rather than a reservation that only this host would enforce.
    /// </summary>
    private static void Spc2NotInCluster(ScsiCommand command) =>
        command.CheckCondition(SenseCode.InvalidCommandOperationCode, FieldPointer.Cdb(0));

    /// <summary>The local store of a clustered engine: never used, the shared table is the store.</summary>
    private sealed class NoLocalStore : IReservationStore
    {
        public static readonly NoLocalStore Instance = new();
        public PersistedReservations? Load() => null;
        public void Save(PersistedReservations state) =>
            throw new InvalidOperationException("a shared reservation table is committed through its cluster store");
    }
}
