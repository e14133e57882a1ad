using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>
/// The engine's side of a shared table without Ceph (docs/reservations.md §18): the audit trail
/// of changes committed through the cluster store, and the unit attentions a host owes its
/// nexuses for changes it missed. The real store is tested in Backends/Rbd.
/// </summary>
public class SharedTableTests
{
    private const PersistentReservationType We = PersistentReservationType.WriteExclusive;
    private const PersistentReservationType WeRo = PersistentReservationType.WriteExclusiveRegistrantsOnly;
    private const PersistentReservationType WeAr = PersistentReservationType.WriteExclusiveAllRegistrants;

    /// <summary>One table in memory behind the interface: a guarded commit by version, announcements that the test answers.</summary>
    private sealed class MemoryClusterStore : IClusterReservationStore
    {
        public ClusterTable Table { get; set; } = ClusterTable.Initial;
        public ClusterTable? Remembered { get; set; }
        public bool Confirmed { get; set; } = true;
        public Exception? CommitFails { get; set; }
        public Func<ClusterTable, bool>? Apply { get; private set; }

        public ClusterTable Join(Func<ClusterTable, bool> apply)
        {
            Apply = apply;
            return Table;
        }

        public ClusterTable? LastKnown() => Remembered;

        public bool TryCommit(ClusterTable next, out ClusterTable current)
        {
            if (CommitFails is { } e) throw e;
            current = Table;
            if (next.Version != Table.Version + 1) return false;
            current = Table = next;
            return true;
        }

        public bool Announce(ClusterTable committed) => Confirmed;

        public void Dispose() { }
    }

    private sealed class RecordingSink : IReservationAuditSink
    {
        public List<ReservationChange> Records { get; } = [];
        public void Record(ReservationChange change) => Records.Add(change);
    }

    private readonly MemoryClusterStore _store = new();
    private readonly RecordingSink _sink = new();
    private readonly PrTestKit _k;

    public SharedTableTests()
    {
        _k = new PrTestKit(3, (bound, drain) => new VolumeReservations(_store, bound, drain));
        _k.Pr.Audit = _sink;
    }

    private ReservationChange One(Func<CommandResult> act, Action<CommandResult> check)
    {
        _sink.Records.Clear();
        check(act());
        return Assert.Single(_sink.Records);
    }

    // ------------------------------------------------------------------ audit (docs/operations.md §12)

    [Fact]
    public void ACommittedChangeIsRecordedWithItsTableVersion()
    {
        var r = One(() => _k.Register(_k[0], 0, 0xA0), Good);
        Assert.Equal((ReservationAction.Register, ReservationResult.Good, 1u, 1UL), (r.Action, r.Result, r.Generation, r.TableVersion));
        Assert.Contains(new KeyValuePair<string, string>("TABLE_VERSION", "1"), r.Fields());
        Assert.EndsWith("(shared table version 1)", r.Message);

        Good(_k.Register(_k[1], 0, 0xA1));
        Good(_k.Reserve(_k[0], 0xA0, WeRo));
        r = One(() => _k.Preempt(_k[1], 0xA1, 0xA0, WeRo, abort: true), Good);
        Assert.Equal((ReservationAction.PreemptAndAbort, _k[1], _k[0], 4UL), (r.Action, r.Holder, r.PreviousHolder, r.TableVersion));
        Assert.Equal([_k[0]], r.Removed);
        Assert.Equal(4UL, _store.Table.Version);
    }

    [Fact]
    public void AConflictIsRecordedAndNothingIsCommitted()
    {
        Good(_k.Register(_k[0], 0, 0xA0));
        Good(_k.Reserve(_k[0], 0xA0, We));
        Good(_k.Register(_k[1], 0, 0xA1));
        var r = One(() => _k.Reserve(_k[1], 0xA1, We), Conflict);
        Assert.Equal((ReservationAction.Reserve, ReservationResult.Conflict, _k[0], 3UL), (r.Action, r.Result, r.PreviousHolder, r.TableVersion));
        Assert.Equal(3UL, _store.Table.Version);
    }

    [Fact]
    public void AMalformedCommandIsNotRecorded()
    {
        Good(_k.Register(_k[0], 0, 0xA0));
        _sink.Records.Clear();
        Check(_k.ProutRaw(_k[0], 0x01, 0x02, PrTestKit.BasicList(0xA0, 0)), SenseCode.InvalidFieldInCdb); // type 2 is reserved
        Check(_k.ProutRaw(_k[0], 0x00, 0, new byte[16]), SenseCode.ParameterListLengthError);
        Assert.Empty(_sink.Records);
        Assert.Equal(1UL, _store.Table.Version);
    }

    [Fact]
    public void AChangeAnotherHostDidNotConfirmIsRecordedAsSuch()
    {
        Good(_k.Register(_k[0], 0, 0xA0));
        _store.Confirmed = false;
        var r = One(() => _k.Register(_k[1], 0, 0xA1), c => Check(c, SenseCode.InternalTargetFailure));
        Assert.Equal((ReservationResult.NotConfirmed, "not-confirmed", 2UL), (r.Result, ReservationChange.ResultName(r.Result), r.TableVersion));
        Assert.Contains("neither acknowledged it nor could be fenced", r.Message);
        Assert.True(r.IsFailure);
    }

    [Fact]
    public void APreemptAndAbortWhoseCommandsDoNotDrainIsAnAbortTimeout()
    {
        Good(_k.Register(_k[0], 0, 0xA0));
        Good(_k.Register(_k[1], 0, 0xA1));
        Good(_k.Reserve(_k[0], 0xA0, WeRo));
        _k.Drain.Drained = false;
        var r = One(() => _k.Preempt(_k[1], 0xA1, 0xA0, WeRo, abort: true), c => Check(c, SenseCode.InternalTargetFailure));
        Assert.Equal((ReservationResult.AbortTimeout, 4UL), (r.Result, r.TableVersion));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ACommitThatFailsIsRecordedAsNotPersisted(bool unavailable)
    {
        _store.CommitFails = unavailable ? new ClusterTableUnavailableException("fenced") : new ReservationStoreException("osd full");
        var r = One(() => _k.Register(_k[0], 0, 0xA0),
            c => Check(c, unavailable ? VolumeReservations.ClusterUnavailableSense : VolumeReservations.PersistFailureSense));
        Assert.Equal((ReservationResult.PersistFailed, 0UL, 0), (r.Result, r.TableVersion, _store.Table.Reservations.Registrations.Count));
    }

    [Fact]
    public void AnAdministrativeClearOfASharedTableIsRecorded()
    {
        Good(_k.Register(_k[0], 0, 0xA0));
        Good(_k.Register(_k[1], 0, 0xA1));
        _sink.Records.Clear();
        _k.Pr.AdministrativeClear();
        var r = Assert.Single(_sink.Records);
        Assert.Equal((ReservationAction.AdministrativeClear, (ItNexus?)null, 3UL, 3u), (r.Action, r.Issuer, r.TableVersion, r.Generation));
        Assert.Equal([_k[0], _k[1]], r.Removed);
        Assert.Empty(_store.Table.Reservations.Registrations);
    }

    [Fact]
    public void ChangesFromOtherHostsAreNotRecordedHere()
    {
        Good(_k.Register(_k[0], 0, 0xA0));
        _sink.Records.Clear();
        var next = new ClusterTable(2, 2, _store.Table.Reservations with { Registrations = [.. _store.Table.Reservations.Registrations, new Registration(_k[2], 0xA2, false)] },
            TableChangeEffects.None);
        Assert.True(_store.Apply!(next));
        Assert.Equal([0xA0UL, 0xA2UL], _k.ReadKeys().Keys);
        Assert.Empty(_sink.Records);
    }

    // ------------------------------------------------------------------ unit attentions owed for missed changes (§18)

    private static PersistedReservations Table(PersistentReservationType type, int holder, params (ItNexus Nexus, ulong Key)[] regs) =>
        new(false, [.. regs.Select(r => new Registration(r.Nexus, r.Key, false))], type, holder);

    [Fact]
    public void MissedPreemptionsClearsAndReleasesRaiseWhatEachWouldHave()
    {
        var a = PrTestKit.Nexus(0);
        var b = PrTestKit.Nexus(1);
        var c = PrTestKit.Nexus(2);
        var before = Table(WeRo, 0, (a, 1), (b, 2), (c, 3));

        // a preempted b (same type): b lost its registration, c still registered under the same reservation.
        Assert.Equal([(b, SenseCode.RegistrationsPreempted)], TableChangeEffects.Missed(before, Table(WeRo, 0, (a, 1), (c, 3))));
        // ... and then released it: c, still registered, was owed RESERVATIONS RELEASED (a is not told of its own release,
        // but a nexus of this host never released anything while the host was away).
        Assert.Equal([(a, SenseCode.ReservationsReleased), (b, SenseCode.RegistrationsPreempted), (c, SenseCode.ReservationsReleased)],
            TableChangeEffects.Missed(before, Table(PersistentReservationType.None, -1, (a, 1), (c, 3))));
        // CLEAR (or tsvctl pr clear): every registration gone.
        Assert.Equal([(a, SenseCode.ReservationsPreempted), (b, SenseCode.ReservationsPreempted), (c, SenseCode.ReservationsPreempted)],
            TableChangeEffects.Missed(before, PersistedReservations.Empty));
        // A preemption that changed the type (case C): the remaining registrants' reservation was released.
        Assert.Equal([(b, SenseCode.RegistrationsPreempted), (c, SenseCode.ReservationsReleased)],
            TableChangeEffects.Missed(before, Table(PersistentReservationType.ExclusiveAccess, 0, (a, 1), (c, 3))));
        // Releasing Write Exclusive raises nothing (§14); nothing changed raises nothing.
        Assert.Empty(TableChangeEffects.Missed(Table(We, 0, (a, 1), (b, 2)), Table(PersistentReservationType.None, -1, (a, 1), (b, 2))));
        Assert.Empty(TableChangeEffects.Missed(before, before));
        Assert.Empty(TableChangeEffects.Missed(PersistedReservations.Empty, before));
        // All Registrants released by another registrant: every registrant left was a holder, and is told.
        Assert.Equal([(a, SenseCode.ReservationsReleased), (c, SenseCode.ReservationsReleased)],
            TableChangeEffects.Missed(Table(WeAr, -1, (a, 1), (b, 2), (c, 3)), Table(PersistentReservationType.None, -1, (a, 1), (c, 3)))
                .Where(o => o.Code == SenseCode.ReservationsReleased));
    }

    [Fact]
    public void AHostThatStartsRaisesTheUnitAttentionsOfTheChangesMadeSinceItLastServed()
    {
        var a = PrTestKit.Nexus(0);
        var b = PrTestKit.Nexus(1);
        var c = PrTestKit.Nexus(2);
        var store = new MemoryClusterStore
        {
            Remembered = new ClusterTable(5, 3, Table(WeRo, 0, (a, 1), (b, 2), (c, 3)), TableChangeEffects.None),
            // Since then another host: PREEMPT b (version 6), RELEASE (version 7).
            Table = new ClusterTable(7, 4, Table(PersistentReservationType.None, -1, (a, 1), (c, 3)), TableChangeEffects.None),
        };
        var k = new PrTestKit(3, (bound, drain) => new VolumeReservations(store, bound, drain));
        Assert.Equal(7UL, k.Pr.ClusterVersion);
        Assert.Equal([SenseCode.ReservationsReleased], k.TakeUnitAttentions(a));
        Assert.Equal([SenseCode.RegistrationsPreempted], k.TakeUnitAttentions(b));
        Assert.Equal([SenseCode.ReservationsReleased], k.TakeUnitAttentions(c));
        Assert.Equal([1UL, 3UL], k.ReadKeys().Keys);
    }

    [Fact]
    public void OneMissedVersionRaisesExactlyItsOwnUnitAttentions()
    {
        var a = PrTestKit.Nexus(0);
        var b = PrTestKit.Nexus(1);
        var store = new MemoryClusterStore
        {
            Remembered = new ClusterTable(5, 3, Table(We, 0, (a, 1), (b, 2)), TableChangeEffects.None),
            Table = new ClusterTable(6, 3, Table(PersistentReservationType.None, -1, (a, 1), (b, 2)),
                new TableChangeEffects([(b, SenseCode.ModeParametersChanged)], [])),
        };
        var k = new PrTestKit(2, (bound, drain) => new VolumeReservations(store, bound, drain));
        Assert.Empty(k.TakeUnitAttentions(a));
        Assert.Equal([SenseCode.ModeParametersChanged], k.TakeUnitAttentions(b)); // what the change says, not a diff
    }

    [Fact]
    public void ARememberedTableNewerThanTheSharedOneIsIgnored()
    {
        var a = PrTestKit.Nexus(0);
        var store = new MemoryClusterStore
        {
            // From an earlier object of the same name: the image was deleted and made again.
            Remembered = new ClusterTable(40, 9, Table(We, 0, (a, 1)), TableChangeEffects.None),
            Table = new ClusterTable(2, 1, Table(PersistentReservationType.None, -1, (PrTestKit.Nexus(1), 7)), TableChangeEffects.None),
        };
        var k = new PrTestKit(2, (bound, drain) => new VolumeReservations(store, bound, drain));
        Assert.Equal(2UL, k.Pr.ClusterVersion);
        Assert.Equal([7UL], k.ReadKeys().Keys);
        Assert.Empty(k.TakeUnitAttentions(a));
    }

    [Fact]
    public void ANotificationOfAVersionAlreadyLoadedRaisesNothingTwice()
    {
        var a = _k[0];
        var b = _k[1];
        Good(_k.Register(a, 0, 1));
        Good(_k.Register(b, 0, 2));
        _k.DrainAllUnitAttentions();
        var preempted = new ClusterTable(3, 3, Table(PersistentReservationType.None, -1, (a, 1)),
            new TableChangeEffects([(b, SenseCode.RegistrationsPreempted)], [b]));
        Assert.True(_store.Apply!(preempted));
        Assert.Equal([SenseCode.RegistrationsPreempted], _k.TakeUnitAttentions(b));
        Assert.True(_store.Apply!(preempted)); // a trailing notification after a re-read
        Assert.Empty(_k.TakeUnitAttentions(b));
        Assert.Equal(2, _k.Drain.Calls.Count); // drained both times: acknowledging is what the issuer waits for
    }
}
