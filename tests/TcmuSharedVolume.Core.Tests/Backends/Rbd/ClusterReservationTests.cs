using System.Buffers.Binary;
using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Scsi;
using TcmuSharedVolume.Volumes;
using static TcmuSharedVolume.Tests.Reservations.PrTestKit;
using static TcmuSharedVolume.Tests.Scsi.ScsiFixture;

namespace TcmuSharedVolume.Tests.Backends.Rbd;

/// <summary>
/// One RBD volume served by several target hosts, each its own RADOS client and Volume, one
/// reservation table in RADOS (docs/reservations.md §16). Everything against the real Ceph.
/// </summary>
[Collection(CephCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ClusterReservationTests : IDisposable
{
    private const int Bs = 512;
    private const byte WriteExclusive = (byte)PersistentReservationType.WriteExclusive;
    private readonly CephCluster _ceph;
    private readonly string _image;
    private readonly List<Host> _hosts = [];

    public ClusterReservationTests(CephCluster ceph)
    {
        _ceph = ceph;
        _image = ceph.CreateImage("16M", features: "layering");
    }

    public void Dispose()
    {
        foreach (var h in _hosts) h.Dispose();
    }

    /// <summary>A target host: its own client of the cluster, its own Volume, one path (initiator node&lt;n&gt; through its port n).</summary>
    private sealed class Host : IDisposable
    {
        /// <param name="lastKnown">Where the host keeps the last table it loaded (its state directory); null: nowhere.</param>
        public Host(CephCluster ceph, string image, int n, TimeSpan notifyTimeout, Func<IBackingStore, IBackingStore>? wrap = null,
            string? lastKnown = null, IReservationAuditSink? audit = null)
        {
            var location = RbdLocation.Create(CephCluster.Pool, image, ceph.ConfPath);
            Store = RbdStore.Open(location);
            Table = new RbdReservationStore(Store)
            {
                NotifyTimeout = notifyTimeout, BlocklistExpireSeconds = 600, HostId = n, HostName = "gw" + n, LastKnownPath = lastKnown,
            };
            Volume = new Volume(location.Path, wrap?.Invoke(Store) ?? Store, Bs, VolumeIdentity.FromBackingPath(location.Path), Table);
            Volume.Reservations.Audit = audit;
            Path = AddPath(n);
        }

        /// <summary>Another path of this host: initiator node&lt;node&gt; through port &lt;node&gt;.</summary>
        public VolumePath AddPath(int node) => Volume.AddPath("h" + node, Nexus("iqn.2024-01.test:node" + node, (ushort)node));

        public RbdStore Store { get; }
        public RbdReservationStore Table { get; }
        public Volume Volume { get; }
        public VolumePath Path { get; }
        public ulong Version => Volume.Reservations.ClusterVersion;

        public Result ProutPath(byte action, byte type, ulong rk, ulong sark, VolumePath? path = null) =>
            Out(path ?? Path, PrOutCdb(action, type, 24), BasicList(rk, sark), segments: 2);

        public Result Register(ulong key, VolumePath? path = null) => ProutPath(0x06, 0, 0, key, path); // REGISTER AND IGNORE EXISTING KEY
        public Result Reserve(ulong key, byte type = WriteExclusive) => ProutPath(0x01, type, key, 0);
        public Result Release(ulong key, byte type = WriteExclusive) => ProutPath(0x02, type, key, 0);
        public Result PreemptAndAbort(ulong key, ulong victim) => ProutPath(0x05, WriteExclusive, key, victim);

        public (uint Generation, ulong[] Keys) ReadKeys()
        {
            var r = In(Path, PrInCdb(0x00, 4096), 4096);
            r.AssertGood();
            uint length = BinaryPrimitives.ReadUInt32BigEndian(r.DataIn.AsSpan(4));
            var keys = new ulong[length / 8];
            for (int i = 0; i < keys.Length; i++) keys[i] = BinaryPrimitives.ReadUInt64BigEndian(r.DataIn.AsSpan(8 + 8 * i));
            return (BinaryPrimitives.ReadUInt32BigEndian(r.DataIn), keys);
        }

        public Result Write(uint lba, byte[] data) => Out(Path, Cdb.Write10(lba, (ushort)(data.Length / Bs)), data);

        public void Dispose() => Volume.Dispose();
    }

    private Host StartHost(int n, double notifyTimeoutSeconds = 5, Func<IBackingStore, IBackingStore>? wrap = null,
        string? lastKnown = null, IReservationAuditSink? audit = null)
    {
        var h = new Host(_ceph, _image, n, TimeSpan.FromSeconds(notifyTimeoutSeconds), wrap, lastKnown, audit);
        _hosts.Add(h);
        return h;
    }

    /// <summary>The path's next READ until the host serves again (NOT READY while it rejoins); what it answered then.</summary>
    private static Result FirstAnswerOnceServing(VolumePath path)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        Result r;
        while ((r = In(path, Cdb.Read10(0, 1), Bs)).Code == SenseCode.LogicalUnitNotReadyCauseNotReportable && DateTime.UtcNow < deadline)
            Thread.Sleep(20);
        return r;
    }

    private static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    [Fact]
    public void DataWrittenThroughOneHostIsReadThroughTheOthers()
    {
        var hosts = new[] { StartHost(1), StartHost(2), StartHost(3) };
        for (int i = 0; i < hosts.Length; i++)
        {
            var data = Pattern(16 * Bs, i);
            hosts[i].Write((uint)(100 * i), data).AssertGood();
            foreach (var other in hosts)
            {
                var r = In(other.Path, Cdb.Read10((uint)(100 * i), 16), 16 * Bs);
                r.AssertGood();
                Assert.Equal(data, r.DataIn);
            }
        }
    }

    [Fact]
    public void EveryHostSeesEveryChangeBeforeGood()
    {
        var hosts = new[] { StartHost(1), StartHost(2), StartHost(3) };
        hosts[0].Register(0xA1).AssertGood();
        hosts[1].Register(0xB2).AssertGood();
        hosts[2].Register(0xC3).AssertGood();
        hosts[1].Reserve(0xB2).AssertGood();
        // No waiting: GOOD came only after every host had applied the change.
        foreach (var h in hosts)
        {
            var (generation, keys) = h.ReadKeys();
            Assert.Equal(3u, generation);
            Assert.Equal([0xA1UL, 0xB2UL, 0xC3UL], keys);
            Assert.Equal(4UL, h.Version);
        }
        // Write Exclusive held by node2 (host 2): the others' writes conflict at once.
        hosts[0].Write(0, new byte[Bs]).AssertStatus(ScsiStatus.ReservationConflict);
        hosts[2].Write(0, new byte[Bs]).AssertStatus(ScsiStatus.ReservationConflict);
        hosts[1].Write(0, new byte[Bs]).AssertGood();
    }

    [Fact]
    public void PreemptAndAbortOnOneHostFencesTheOtherHostsNexusAndDrainsItsWrites()
    {
        var h1 = StartHost(1);
        // Host 2's writes pass its gate and take a while to reach Ceph (a busy host).
        var h2 = StartHost(2, wrap: s => new FaultStore(s) { BeforeWrite = () => Thread.Sleep(50) });
        h2.Register(2).AssertGood();
        h2.Reserve(2).AssertGood();
        h1.Register(1).AssertGood();

        // Host 2 writes as fast as it can; once host 1's PREEMPT AND ABORT is GOOD, no write of
        // host 2 may land any more: host 1's marker written after GOOD must survive.
        var mine = Pattern(8 * Bs, 7);
        int good = 0;
        var stop = new ManualResetEventSlim();
        var writer = new Thread(() =>
        {
            while (!stop.IsSet)
            {
                var r = h2.Write(1000, mine);
                if (r.Status == ScsiStatus.Good) good++;
                else if (r.Status == ScsiStatus.ReservationConflict) break;
            }
        });
        writer.Start();
        while (Volatile.Read(ref good) < 5) Thread.Sleep(1);
        h1.PreemptAndAbort(1, 2).AssertGood();
        var marker = Pattern(8 * Bs, 8);
        h1.Write(1000, marker).AssertGood(); // host 1 now holds the reservation
        Assert.True(writer.Join(TimeSpan.FromSeconds(30)), "host 2's writer never saw the conflict");
        stop.Set();
        var back = In(h1.Path, Cdb.Read10(1000, 8), 8 * Bs);
        Assert.Equal(marker, back.DataIn);
        // Host 2's initiator was told why (the writer may have consumed the unit attention).
        var next = h2.Write(1000, mine);
        Assert.True(next.Status == ScsiStatus.ReservationConflict, $"host 2's write after the preemption: {next.Status}");
        Assert.Equal([1UL], h2.ReadKeys().Keys);
    }

    [Fact]
    public void PreemptAndAbortWaitsForTheFencedNexusWritesStillInTheStore()
    {
        var h1 = StartHost(1);
        // Host 2 runs its writes as the event loop does: started, and finished by librbd's
        // callback. Each reaches librbd 50 ms after it passed the gate (a slow network), the
        // window in which only its count on the path stands between it and host 1's GOOD.
        var h2 = StartHost(2, wrap: s => new ThreadedAsyncStore(s) { Delay = TimeSpan.FromMilliseconds(50) });
        h2.Register(2).AssertGood();
        h2.Reserve(2).AssertGood();
        h1.Register(1).AssertGood();

        var mine = Pattern(8 * Bs, 9);
        int good = 0, notLater = 0;
        var writer = new Thread(() =>
        {
            while (true)
            {
                var (r, later) = OutLater(h2.Path, Cdb.Write10(1000, 8), mine);
                if (!later && r.Status == ScsiStatus.Good) notLater++;
                if (r.Status == ScsiStatus.Good) Interlocked.Increment(ref good);
                else if (r.Status == ScsiStatus.ReservationConflict) break;
            }
        });
        writer.Start();
        while (Volatile.Read(ref good) < 3) Thread.Sleep(1);
        h1.PreemptAndAbort(1, 2).AssertGood();
        var marker = Pattern(8 * Bs, 10);
        h1.Write(1000, marker).AssertGood();
        Assert.True(writer.Join(TimeSpan.FromSeconds(30)), "host 2's writer never saw the conflict");
        Assert.Equal(0, notLater); // every GOOD write went through the store's thread
        Assert.Equal(0, h2.Path.InFlight);
        Assert.Equal(marker, In(h1.Path, Cdb.Read10(1000, 8), 8 * Bs).DataIn);
    }

    [Fact]
    public void UnitAttentionsReachTheOtherHostsNexus()
    {
        var h1 = StartHost(1);
        var h2 = StartHost(2);
        h2.Register(2).AssertGood();
        h1.Register(1).AssertGood();
        h1.Reserve(1).AssertGood();
        h1.ProutPath(0x04, WriteExclusive, 1, 2).AssertGood(); // PREEMPT node2's registration
        Run(h2.Path, new byte[6]).AssertCheck(SenseCode.RegistrationsPreempted);
        h2.Write(0, new byte[Bs]).AssertStatus(ScsiStatus.ReservationConflict);
    }

    [Fact]
    public void Spc2ReserveIsNotOfferedOnASharedTable()
    {
        var h1 = StartHost(1);
        Run(h1.Path, [OperationCode.Reserve6, 0, 0, 0, 0, 0]).AssertCheck(SenseCode.InvalidCommandOperationCode);
        var rsoc = In(h1.Path, Cdb.Rsoc(1, OperationCode.Reserve6), 64);
        rsoc.AssertGood();
        Assert.Equal(0x01, rsoc.DataIn[1] & 0x07); // SUPPORT 001b: not supported
    }

    [Fact]
    public void TwoHostsRacingConflictingReservesExactlyOneWins()
    {
        var hosts = new[] { StartHost(1), StartHost(2) };
        hosts[0].Register(1).AssertGood();
        hosts[1].Register(2).AssertGood();
        for (int round = 0; round < 10; round++)
        {
            var results = new Result[2];
            using var start = new Barrier(2);
            var threads = Enumerable.Range(0, 2).Select(i => new Thread(() =>
            {
                start.SignalAndWait();
                results[i] = hosts[i].Reserve((ulong)i + 1);
            })).ToArray();
            foreach (var t in threads) t.Start();
            foreach (var t in threads) t.Join();
            Assert.Equal(1, results.Count(r => r.Status == ScsiStatus.Good));
            int w = results[0].Status == ScsiStatus.Good ? 0 : 1;
            results[1 - w].AssertStatus(ScsiStatus.ReservationConflict);
            hosts[w].Release((ulong)w + 1).AssertGood();
        }
    }

    [Fact]
    public void ALostRaceDecidesAgainOnTheNewerTable()
    {
        var h1 = StartHost(1);
        var h2 = StartHost(2);
        h1.Register(1).AssertGood();
        h2.Register(2).AssertGood();
        ulong before = h1.Version;
        Result? first = null;
        Thread? racer = null;
        // Host 2 decided RESERVE on the table without a reservation; host 1's RESERVE commits
        // just before host 2's guarded write.
        h2.Table.BeforeCommit = () =>
        {
            h2.Table.BeforeCommit = null;
            racer = new Thread(() => first = h1.Reserve(1));
            racer.Start();
            var deadline = DateTime.UtcNow.AddSeconds(20);
            while (h1.Version == before && DateTime.UtcNow < deadline) Thread.Sleep(1);
        };
        var second = h2.Reserve(2);
        racer!.Join();
        first!.AssertGood();
        second.AssertStatus(ScsiStatus.ReservationConflict); // decided again: node1 holds Write Exclusive now
        Assert.Equal(1, h2.Table.LostRaces);
        Assert.Equal(h1.Version, h2.Version);
    }

    [Fact]
    public void AHostThatDoesNotAcknowledgeIsFencedAndRejoinsWithTheNewTable()
    {
        var h1 = StartHost(1, notifyTimeoutSeconds: 1.5);
        var h2 = StartHost(2, notifyTimeoutSeconds: 1.5);
        h2.Register(2).AssertGood();
        h2.Reserve(2).AssertGood();
        h1.Register(1).AssertGood();
        using var hung = new ManualResetEventSlim();
        h2.Table.BeforeApply = () => hung.Wait();

        h1.PreemptAndAbort(1, 2).AssertGood(); // after blocklisting host 2
        Assert.Equal(1, h1.Table.FencedHosts);
        // Host 2 still has the old table (node2 holds the reservation), but Ceph refuses it.
        h2.Write(0, new byte[Bs]).AssertCheck(SenseCode.LogicalUnitNotReadyCauseNotReportable);
        h1.Write(0, Pattern(Bs, 1)).AssertGood();

        h2.Table.BeforeApply = null;
        hung.Set();
        Result r;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        do
        {
            Thread.Sleep(50);
            r = h2.Write(0, new byte[Bs]);
        }
        while (r.Code == SenseCode.LogicalUnitNotReadyCauseNotReportable && DateTime.UtcNow < deadline);
        // The new table is in force on host 2 (from the late notification, or from the re-read
        // when it rejoined): node2 was preempted, its writes conflict.
        if (r.Status == ScsiStatus.CheckCondition) Assert.Equal(SenseCode.RegistrationsPreempted, r.Code);
        h2.Write(0, new byte[Bs]).AssertStatus(ScsiStatus.ReservationConflict);
        while (h2.Table.Rejoins == 0 && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Assert.Equal(1, h2.Table.Rejoins);
        Assert.Equal([1UL], h2.ReadKeys().Keys);
        Assert.Equal(h1.Version, h2.Version);
        Assert.Equal(Pattern(Bs, 1), In(h2.Path, Cdb.Read10(0, 1), Bs).DataIn);
        // And it takes part again: the next change reaches it without fencing.
        h1.Release(1).AssertGood();
        h2.Register(22).AssertGood();
        Assert.Equal(1, h1.Table.FencedHosts);
    }

    /// <summary>(group, ports) of REPORT TARGET PORT GROUPS through a host, length-only format.</summary>
    private static (ushort Group, ushort[] Ports)[] ReportTargetPortGroups(Host h)
    {
        var r = In(h.Path, [OperationCode.MaintenanceIn, OperationCode.ServiceActionReportTargetPortGroups, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0], 1024);
        r.AssertGood();
        var d = r.DataIn;
        var groups = new List<(ushort, ushort[])>();
        for (int at = 4; at < d.Length; at += 8 + 4 * d[at + 7])
            groups.Add((BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 2)),
                Enumerable.Range(0, d[at + 7]).Select(i => BinaryPrimitives.ReadUInt16BigEndian(d.AsSpan(at + 10 + 4 * i))).ToArray()));
        return [.. groups];
    }

    [Fact]
    public void EveryHostListsEveryHostsTargetPortGroupThroughTheTableObject()
    {
        var h1 = StartHost(1);
        var h2 = StartHost(2);
        h1.Volume.PortGroups.Configure(hostId: 1, optimizedHost: null);
        h2.Volume.PortGroups.Configure(hostId: 2, optimizedHost: null);
        foreach (var h in new[] { h1, h2, h1 }) h.Volume.PortGroups.Refresh();
        foreach (var h in new[] { h1, h2 })
        {
            var groups = ReportTargetPortGroups(h);
            Assert.Equal(new ushort[] { 1, 2 }, groups.Select(g => g.Group));
            Assert.Equal(new ushort[] { 1 }, groups[0].Ports);
            Assert.Equal(new ushort[] { 2 }, groups[1].Ports);
        }
        // What another tool sees: one xattr per host on the table's object.
        Assert.Equal("2", _ceph.Rados("-p", CephCluster.Pool, "getxattr", RbdReservationStore.ObjectName(_image), "tsv.ports.2").Trim());

        // A host that stops serving withdraws its group.
        h2.Dispose();
        _hosts.Remove(h2);
        h1.Volume.PortGroups.Refresh();
        Assert.Equal(new ushort[] { 1 }, ReportTargetPortGroups(h1).Select(g => g.Group));
    }

    private sealed class RecordingSink : IReservationAuditSink
    {
        public List<ReservationChange> Records { get; } = [];
        public void Record(ReservationChange change)
        {
            lock (Records) Records.Add(change);
        }
    }

    [Fact]
    public void EachChangeIsAuditedOnceOnTheHostThatMadeIt()
    {
        var audit1 = new RecordingSink();
        var audit2 = new RecordingSink();
        var h1 = StartHost(1, audit: audit1);
        var h2 = StartHost(2, audit: audit2);
        h1.Register(1).AssertGood();
        h2.Register(2).AssertGood();
        h2.Reserve(2).AssertGood();
        h1.Reserve(1).AssertStatus(ScsiStatus.ReservationConflict);
        h1.PreemptAndAbort(1, 2).AssertGood();

        Assert.Equal([(ReservationAction.RegisterAndIgnoreExistingKey, ReservationResult.Good, 1UL),
                (ReservationAction.Reserve, ReservationResult.Conflict, 3UL), (ReservationAction.PreemptAndAbort, ReservationResult.Good, 4UL)],
            audit1.Records.Select(r => (r.Action, r.Result, r.TableVersion ?? 0)));
        Assert.Equal([(ReservationAction.RegisterAndIgnoreExistingKey, ReservationResult.Good, 2UL), (ReservationAction.Reserve, ReservationResult.Good, 3UL)],
            audit2.Records.Select(r => (r.Action, r.Result, r.TableVersion ?? 0)));
        var fence = audit1.Records[^1];
        Assert.Equal(h2.Path.Nexus, Assert.Single(fence.Removed));
        Assert.Equal((h2.Path.Nexus, h1.Path.Nexus, 3u), (fence.PreviousHolder, fence.Holder, fence.Generation));
    }

    [Fact]
    public void AFencedHostRaisesTheUnitAttentionsOfTheChangesItMissedWhenItRejoins()
    {
        const byte RegistrantsOnly = (byte)PersistentReservationType.WriteExclusiveRegistrantsOnly;
        var h1 = StartHost(1, notifyTimeoutSeconds: 1.5);
        var h2 = StartHost(2, notifyTimeoutSeconds: 1.5);
        var node3 = h2.AddPath(3);
        h1.Register(1).AssertGood();
        h2.Register(2).AssertGood();
        h2.Register(3, node3).AssertGood();
        h1.Reserve(1, RegistrantsOnly).AssertGood();

        // Host 2 misses two changes: it never applies the first (it hangs, then fails, so it is
        // fenced) and is gone from the watchers for the second. It rejoins after both.
        using var hung = new ManualResetEventSlim();
        h2.Table.BeforeApply = () =>
        {
            hung.Wait();
            throw new InvalidOperationException("test: this host loses the change");
        };
        h1.ProutPath(0x04, RegistrantsOnly, 1, 2).AssertGood(); // PREEMPT node2
        Assert.Equal(1, h1.Table.FencedHosts);
        h1.Release(1, RegistrantsOnly).AssertGood();
        h2.Table.BeforeApply = null;
        hung.Set();

        // node2 lost its registration, node3 its reservation: each is told on its next command.
        FirstAnswerOnceServing(h2.Path).AssertCheck(SenseCode.RegistrationsPreempted);
        In(node3, Cdb.Read10(0, 1), Bs).AssertCheck(SenseCode.ReservationsReleased); // queued before the image serves again
        FirstAnswerOnceServing(node3).AssertGood();
        Assert.Equal(1, h2.Table.Rejoins);
        Assert.Equal(h1.Version, h2.Version);
        Assert.Equal([1UL, 3UL], h2.ReadKeys().Keys);
    }

    [Fact]
    public void AHostThatStartsAgainRaisesTheUnitAttentionsOfTheChangesMadeWhileItWasStopped()
    {
        var stateDirectory = Directory.CreateTempSubdirectory("tsv-state-");
        try
        {
            string lastKnown = System.IO.Path.Combine(stateDirectory.FullName, "volume.shared");
            var h1 = StartHost(1);
            var h2 = new Host(_ceph, _image, 2, TimeSpan.FromSeconds(5), lastKnown: lastKnown);
            h1.Register(1).AssertGood();
            h2.Register(2).AssertGood();
            h1.Reserve(1).AssertGood();
            h2.Dispose();
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(lastKnown)); // it names initiators and keys

            h1.ProutPath(0x04, WriteExclusive, 1, 2).AssertGood(); // PREEMPT node2 while host 2 is stopped
            h1.Register(11).AssertGood();

            var again = StartHost(2, lastKnown: lastKnown);
            Run(again.Path, new byte[6]).AssertCheck(SenseCode.RegistrationsPreempted);
            Run(again.Path, new byte[6]).AssertGood();
            Assert.Equal([11UL], again.ReadKeys().Keys);

            // Started with nothing kept, a host cannot know what it missed and raises nothing.
            var fresh = StartHost(4);
            Run(fresh.Path, new byte[6]).AssertGood();
        }
        finally
        {
            stateDirectory.Delete(recursive: true);
        }
    }

    [Fact]
    public void EveryHostIsListedWithItsIdAndStaleRecordsExpireWhenAHostJoins()
    {
        var h1 = StartHost(1);
        var h2 = StartHost(2);
        var hosts = h1.Table.Hosts();
        Assert.Equal([(1, "gw1", RbdHostState.Serving, true), (2, "gw2", RbdHostState.Serving, false)],
            hosts.Select(h => (h.Record.HostId ?? 0, h.Record.HostName, h.State, h.IsThisHost)).OrderBy(h => h.Item1));
        Assert.All(hosts, h => Assert.Contains("127.0.0.1:", h.Record.Address));

        // A host stopped cleanly takes its record with it.
        h2.Dispose();
        _hosts.Remove(h2);
        Assert.Equal([1], h1.Table.Hosts().Select(h => h.Record.HostId ?? 0));

        // A host that crashed leaves its record; it is listed as gone, and the next host to join removes it.
        string oid = RbdReservationStore.ObjectName(_image);
        _ceph.Rados("-p", CephCluster.Pool, "setxattr", oid, "tsv.host.999999", "host_id=3 hostname=gw3 since=2026-12-01T10:00:00Z addr=[v2:127.0.0.1:0/1]");
        var gone = Assert.Single(h1.Table.Hosts(), h => h.Record.ClientId == 999999);
        Assert.Equal((3, "gw3", RbdHostState.Gone), (gone.Record.HostId, gone.Record.HostName, gone.State));
        StartHost(3);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (h1.Table.Hosts().Any(h => h.Record.ClientId == 999999) && DateTime.UtcNow < deadline) Thread.Sleep(50);
        Assert.Equal([1, 3], h1.Table.Hosts().Select(h => h.Record.HostId ?? 0).Order());
        Assert.All(h1.Table.Hosts(), h => Assert.Equal(RbdHostState.Serving, h.State));
    }

    [Fact]
    public void AHostStartedDuringChangesSeesOneWholeTable()
    {
        var h1 = StartHost(1);
        h1.Register(1).AssertGood();
        uint baseGeneration = h1.ReadKeys().Generation;
        var stop = new ManualResetEventSlim();
        var changer = new Thread(() =>
        {
            for (ulong key = 2; !stop.IsSet; key++)
                h1.Register(key).AssertGood(); // REGISTER AND IGNORE: key k at generation base + k - 1
        });
        changer.Start();
        try
        {
            for (int i = 0; i < 8; i++)
            {
                using var fresh = new Host(_ceph, _image, 10 + i, TimeSpan.FromSeconds(5));
                var (generation, keys) = fresh.ReadKeys();
                var key = Assert.Single(keys);
                Assert.Equal(generation - baseGeneration + 1, key);
            }
        }
        finally
        {
            stop.Set();
            changer.Join();
        }
    }
}

internal static class ResultAssertions
{
    public static void AssertStatus(this Result r, ScsiStatus expected) =>
        Assert.True(r.Status == expected, $"expected {expected}, got {r.Status} {(r.Status == ScsiStatus.CheckCondition ? r.Code.ToString() : "")}");
}
