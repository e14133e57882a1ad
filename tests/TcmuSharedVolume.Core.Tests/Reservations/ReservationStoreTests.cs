using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using static TcmuSharedVolume.Tests.Reservations.ResultAssert;

namespace TcmuSharedVolume.Tests.Reservations;

/// <summary>
/// An in-memory file system that knows what is durable: file data after fsync, directory
/// entries after a directory fsync. It can fail (IOException) or "crash" before any step, and
/// then enumerate the states a real disk could come back with.
/// </summary>
public sealed class CrashFileSystem : IReservationFileSystem
{
    public sealed class Inode
    {
        public byte[] Live = [];
        public byte[] Durable = [];
    }

    private abstract record DirOp;
    private sealed record CreateOp(string Name, Inode Inode) : DirOp;
    private sealed record RenameOp(string From, string To) : DirOp;

    public sealed class CrashException : Exception;

    private readonly Dictionary<string, Inode> _durable;
    private readonly Dictionary<string, Inode> _live;
    private readonly List<DirOp> _pending = [];

    public CrashFileSystem() : this(new Dictionary<string, Inode>()) { }

    private CrashFileSystem(Dictionary<string, Inode> files)
    {
        _durable = new(files);
        _live = new(files);
    }

    public int Steps { get; private set; }
    public int FailAtStep { get; set; } = -1;
    public int CrashAtStep { get; set; } = -1;
    public List<string> Log { get; } = [];

    private void Step(string what)
    {
        Steps++;
        Log.Add(what);
        if (Steps == CrashAtStep) throw new CrashException();
        if (Steps == FailAtStep) throw new IOException($"injected failure at {what}");
    }

    public byte[]? ReadAll(string path) => _live.TryGetValue(path, out var i) ? i.Live.ToArray() : null;

    public bool Exists(string path) => _live.ContainsKey(path);

    /// <summary>The host's boot; a test "reboots" by changing it.</summary>
    public string? BootId { get; set; } = "boot-1";

    public void CreateDirectory(string path) { }

    public IReservationFile Create(string path)
    {
        Step($"create {Path.GetFileName(path)}");
        if (_live.TryGetValue(path, out var inode))
            inode.Live = []; // O_TRUNC
        else
        {
            inode = new Inode();
            _live[path] = inode;
            _pending.Add(new CreateOp(path, inode));
        }
        return new File(this, inode, Path.GetFileName(path));
    }

    public void Rename(string from, string to)
    {
        Step($"rename {Path.GetFileName(from)} {Path.GetFileName(to)}");
        if (!_live.Remove(from, out var inode)) throw new FileNotFoundException(from);
        _live[to] = inode;
        _pending.Add(new RenameOp(from, to));
    }

    public void SyncDirectory(string path)
    {
        Step("fsync dir");
        Apply(_durable, _pending.Count);
        _pending.Clear();
    }

    private void Apply(Dictionary<string, Inode> dir, int count)
    {
        foreach (var op in _pending.Take(count))
        {
            switch (op)
            {
                case CreateOp c: dir[c.Name] = c.Inode; break;
                case RenameOp r when dir.Remove(r.From, out var i): dir[r.To] = i; break;
            }
        }
    }

    /// <summary>Every disk state a crash now could leave: any prefix of the unsynced directory
    /// operations (in order), and unsynced file data lost, torn in half, or complete.</summary>
    public IEnumerable<CrashFileSystem> Recoveries()
    {
        for (int prefix = 0; prefix <= _pending.Count; prefix++)
        {
            foreach (int dataMode in new[] { 0, 1, 2 })
            {
                var dir = new Dictionary<string, Inode>(_durable);
                Apply(dir, prefix);
                var recovered = new Dictionary<string, Inode>();
                foreach (var (name, inode) in dir)
                {
                    byte[] data = inode.Live.AsSpan().SequenceEqual(inode.Durable) ? inode.Durable : dataMode switch
                    {
                        0 => inode.Durable,
                        1 => inode.Live[..(inode.Live.Length / 2)],
                        _ => inode.Live,
                    };
                    recovered[name] = new Inode { Live = data.ToArray(), Durable = data.ToArray() };
                }
                yield return new CrashFileSystem(recovered);
            }
        }
    }

    private sealed class File(CrashFileSystem fs, Inode inode, string name) : IReservationFile
    {
        public void Write(ReadOnlySpan<byte> data)
        {
            fs.Step($"write {name}");
            inode.Live = [.. inode.Live, .. data];
        }

        public void Sync()
        {
            fs.Step($"fsync {name}");
            inode.Durable = inode.Live.ToArray();
        }

        public void Dispose() { }
    }
}

public class ReservationStoreTests
{
    private const string Dir = "/var/lib/tsv/pr";
    private const string VolumeKey = "/dev/vg0/shared1";

    private static PersistedReservations State(int n, PersistentReservationType type = PersistentReservationType.WriteExclusiveRegistrantsOnly, bool aptpl = true)
    {
        var regs = Enumerable.Range(0, n).Select(i => new Registration(PrTestKit.Nexus(i, 1 + i % 2), (ulong)(0x1000 + i), i % 3 == 0)).ToArray();
        return new PersistedReservations(aptpl, regs, n == 0 ? PersistentReservationType.None : type, n == 0 ? -1 : n - 1);
    }

    private static string Describe(PersistedReservations? s) => s is null || s.Registrations.Count == 0 && s.Type == PersistentReservationType.None
        ? "empty"
        : $"{s.Aptpl}|{s.Type}|{s.HolderIndex}|" + string.Join(";", s.Registrations.Select(r =>
            $"{r.Key:x}/{r.AllTargetPorts}/{r.Nexus.Initiator.Protocol}/{r.Nexus.Initiator.Name}/{r.Nexus.Initiator.Isid}/{r.Nexus.Target.Name}/{r.Nexus.Target.RelativeTargetPortId}"));

    [Fact]
    public void RoundTripsEveryField()
    {
        var fs = new CrashFileSystem();
        var store = new FileReservationStore(Dir, VolumeKey, fs);
        Assert.Null(store.Load());
        var s = State(5);
        store.Save(s);
        Assert.Equal(Describe(s), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));
        Assert.Equal(["create " + FileReservationStore.FileName(VolumeKey) + ".tmp", "write " + FileReservationStore.FileName(VolumeKey) + ".tmp",
            "fsync " + FileReservationStore.FileName(VolumeKey) + ".tmp", "rename " + FileReservationStore.FileName(VolumeKey) + ".tmp " + FileReservationStore.FileName(VolumeKey),
            "fsync dir"], fs.Log);
    }

    [Fact]
    public void CrashAtEveryStepReloadsExactlyTheOldOrTheNewState()
    {
        var states = new[] { null, State(3), State(1, PersistentReservationType.ExclusiveAccess, aptpl: false), State(0), State(7) };
        int checkedRecoveries = 0;
        for (int from = 0; from < states.Length - 1; from++)
        {
            var old = states[from];
            var next = states[from + 1]!;
            // Count the steps of one commit first.
            for (int crashAt = 1; ; crashAt++)
            {
                var fs = new CrashFileSystem();
                var store = new FileReservationStore(Dir, VolumeKey, fs);
                foreach (var earlier in states.Take(from + 1))
                    if (earlier is not null) store.Save(earlier);
                int before = fs.Steps;
                fs.CrashAtStep = before + crashAt;
                bool crashed;
                try { store.Save(next); crashed = false; }
                catch (CrashFileSystem.CrashException) { crashed = true; }
                foreach (var disk in fs.Recoveries())
                {
                    var loaded = new FileReservationStore(Dir, VolumeKey, disk).Load();
                    var got = Describe(loaded);
                    if (crashed)
                        Assert.True(got == Describe(old) || got == Describe(next), $"crash at step {crashAt} of {from}->{from + 1}: got {got}");
                    else
                        Assert.Equal(Describe(next), got); // GOOD was returned: only the new state may come back
                    checkedRecoveries++;

                    // And the recovered store keeps working: the next commit wins.
                    var again = new FileReservationStore(Dir, VolumeKey, disk);
                    again.Load();
                    again.Save(State(2));
                    Assert.Equal(Describe(State(2)), Describe(new FileReservationStore(Dir, VolumeKey, disk).Load()));
                }
                if (!crashed) break;
            }
        }
        Assert.True(checkedRecoveries > 50, $"only {checkedRecoveries} recoveries checked");
    }

    [Fact]
    public void CorruptTruncatedOrForeignFilesAreReportedNeverReset()
    {
        var fs = new CrashFileSystem();
        var store = new FileReservationStore(Dir, VolumeKey, fs);
        store.Save(State(3));
        var path = store.Path;
        var good = fs.ReadAll(path)!;

        void Expect(byte[] content, string fragment)
        {
            using (var f = fs.Create(path)) f.Write(content);
            var e = Assert.Throws<ReservationStoreException>(() => new FileReservationStore(Dir, VolumeKey, fs).Load());
            Assert.Contains(fragment, e.Message);
        }

        var flipped = good.ToArray();
        flipped[40] ^= 0x01;
        Expect(flipped, "checksum");
        Expect(good[..(good.Length - 3)], "truncated");
        Expect([], "truncated");
        var badMagic = good.ToArray();
        badMagic[0] = (byte)'X';
        Expect(badMagic, "magic");
        var version = good.ToArray();
        version[8] = 3;
        Expect(version, "version");
        using (var f = fs.Create(path)) f.Write(good);
        Assert.Equal(Describe(State(3)), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));
    }

    [Fact]
    public void AfterAHostRestartOnlyAnAptplStateSurvives_ADaemonRestartKeepsEither()
    {
        // SPC-4 5.14.5: the host's restart is the target's power loss. A daemon restart is not.
        var fs = new CrashFileSystem();
        new FileReservationStore(Dir, VolumeKey, fs).Save(State(3, aptpl: false));
        Assert.Equal(Describe(State(3, aptpl: false)), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));
        fs.BootId = "boot-2";
        Assert.Equal("empty", Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));

        new FileReservationStore(Dir, VolumeKey, fs).Save(State(2, aptpl: true));
        fs.BootId = "boot-3";
        Assert.Equal(Describe(State(2, aptpl: true)), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));

        // Where the boot cannot be told (no boot_id now, or none recorded), nothing is dropped on a guess.
        new FileReservationStore(Dir, VolumeKey, fs).Save(State(4, aptpl: false));
        fs.BootId = null;
        Assert.Equal(Describe(State(4, aptpl: false)), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));
        new FileReservationStore(Dir, VolumeKey, fs).Save(State(4, aptpl: false));
        fs.BootId = "boot-4";
        Assert.Equal(Describe(State(4, aptpl: false)), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));
    }

    [Fact]
    public void AFormatVersion1FileIsReadAsSavedInThisBoot()
    {
        // The first format had no boot id after the volume key; its state is kept as it was.
        var fs = new CrashFileSystem { BootId = null };
        var store = new FileReservationStore(Dir, VolumeKey, fs);
        store.Save(State(3, aptpl: false));
        var v2 = fs.ReadAll(store.Path)!;
        int keyEnd = 24 + 2 + System.Text.Encoding.UTF8.GetByteCount(VolumeKey); // u16 length + UTF-8
        Assert.Equal(0, BitConverter.ToUInt16(v2, keyEnd)); // the empty boot id written for "unknown"
        var payload = v2[24..keyEnd].Concat(v2[(keyEnd + 2)..^4]).ToArray();
        var v1 = new byte[24 + payload.Length + 4];
        v2.AsSpan(0, 24).CopyTo(v1);
        BitConverter.GetBytes(1u).CopyTo(v1, 8);
        BitConverter.GetBytes((uint)payload.Length).CopyTo(v1, 20);
        payload.CopyTo(v1, 24);
        BitConverter.GetBytes(FileReservationStore.Crc32C(v1.AsSpan(0, 24 + payload.Length))).CopyTo(v1, 24 + payload.Length);
        using (var f = fs.Create(store.Path)) f.Write(v1);
        fs.BootId = "boot-9";
        Assert.Equal(Describe(State(3, aptpl: false)), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));
    }

    [Fact]
    public void ForeignVolumeKeyInsideTheFileIsReported()
    {
        var fs = new CrashFileSystem();
        var a = new FileReservationStore(Dir, VolumeKey, fs);
        a.Save(State(2));
        var b = new FileReservationStore(Dir, "/dev/vg0/other", fs);
        using (var f = fs.Create(b.Path)) f.Write(fs.ReadAll(a.Path)!);
        var e = Assert.Throws<ReservationStoreException>(() => b.Load());
        Assert.Contains("belongs to volume", e.Message);
    }

    [Fact]
    public void CorruptCurrentFileIsReportedEvenWhenThePreviousGenerationIsFine()
    {
        var fs = new CrashFileSystem();
        var store = new FileReservationStore(Dir, VolumeKey, fs);
        store.Save(State(1));
        store.Save(State(2));
        Assert.NotNull(fs.ReadAll(store.Path + ".prev"));
        var bytes = fs.ReadAll(store.Path)!;
        bytes[^1] ^= 0xFF;
        using (var f = fs.Create(store.Path)) f.Write(bytes);
        var e = Assert.Throws<ReservationStoreException>(() => new FileReservationStore(Dir, VolumeKey, fs).Load());
        Assert.Contains(".prev", e.Message);
    }

    [Fact]
    public void SaveWithoutLoadContinuesTheEpochOnDisk()
    {
        var fs = new CrashFileSystem();
        var a = new FileReservationStore(Dir, VolumeKey, fs);
        for (int i = 1; i <= 4; i++) a.Save(State(i));
        new FileReservationStore(Dir, VolumeKey, fs).Save(State(6)); // no Load first
        Assert.Equal(Describe(State(6)), Describe(new FileReservationStore(Dir, VolumeKey, fs).Load()));
    }

    [Fact]
    public void RealFileSystemRoundTripWithDirectoryFsync()
    {
        var dir = Path.Combine(Path.GetTempPath(), "tsv-pr-" + Guid.NewGuid().ToString("N"));
        try
        {
            var store = new FileReservationStore(dir, VolumeKey);
            Assert.Null(store.Load());
            store.Save(State(4));
            store.Save(State(6));
            Assert.True(File.Exists(store.Path));
            Assert.True(File.Exists(store.Path + ".prev"));
            Assert.False(File.Exists(store.Path + ".tmp"));
            Assert.Equal(Describe(State(6)), Describe(new FileReservationStore(dir, VolumeKey).Load()));
            Assert.Throws<IOException>(() => new LinuxReservationFileSystem().SyncDirectory(Path.Combine(dir, "missing")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // ------------------------------------------------------------------ through the engine

    [Fact]
    public void RegistrationsAndReservationSurviveRestartGenerationRestartsAtZero()
    {
        var fs = new CrashFileSystem();
        var k = new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs));
        Good(k.Register(k[0], 0, 1, aptpl: true));
        Good(k.Register(k[1], 0, 2, aptpl: true));
        Good(k.Reserve(k[1], 2, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        Assert.Equal(2u, k.Generation);
        var k2 = new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs));
        var (gen, keys) = k2.ReadKeys();
        Assert.Equal(0u, gen);
        Assert.Equal([1UL, 2UL], keys);
        Assert.Equal((2UL, PersistentReservationType.WriteExclusiveRegistrantsOnly), k2.ReadReservation());
        Assert.Equal(1, k2.PrIn(k2[0], 0x02).Data[3] & 1);
        Assert.False(k2.CanWrite(k2[2]));
        Assert.True(k2.CanWrite(k2[0]));
    }

    [Fact]
    public void WithoutAptplStateStillSurvivesButPtplAIsOff()
    {
        var fs = new CrashFileSystem();
        var k = new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs));
        Good(k.Register(k[0], 0, 1));
        var k2 = new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs));
        Assert.Equal([1UL], k2.ReadKeys().Keys);
        Assert.Equal(0, k2.PrIn(k2[0], 0x02).Data[3] & 1);
    }

    [Theory]
    [InlineData(1)] // create
    [InlineData(2)] // write
    [InlineData(3)] // fsync
    [InlineData(4)] // rename
    [InlineData(5)] // directory fsync (the new file is already in place)
    public void FailedWriteFailsTheCommandAndChangesNothing(int failStep)
    {
        var fs = new CrashFileSystem();
        var k = new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs));
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, PersistentReservationType.WriteExclusiveRegistrantsOnly));
        uint gen = k.Generation;
        fs.FailAtStep = fs.Steps + failStep;
        Check(k.Preempt(k[1], 2, 1, PersistentReservationType.WriteExclusiveRegistrantsOnly, abort: true), SenseCode.InternalTargetFailure);
        Assert.Equal(gen, k.Generation);
        Assert.Equal([1UL, 2UL], k.ReadKeys().Keys);
        Assert.Equal((1UL, PersistentReservationType.WriteExclusiveRegistrantsOnly), k.ReadReservation());
        Assert.True(k.CanWrite(k[0]));
        Assert.Empty(k.TakeUnitAttentions(k[0]));
        Assert.Empty(k.Drain.Calls);
        // A restart sees the state the initiator was told about, not the refused change.
        var k2 = new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs));
        Assert.Equal([1UL, 2UL], k2.ReadKeys().Keys);
        Assert.Equal((1UL, PersistentReservationType.WriteExclusiveRegistrantsOnly), k2.ReadReservation());
        // And the next attempt works.
        Good(k.Preempt(k[1], 2, 1, PersistentReservationType.WriteExclusiveRegistrantsOnly, abort: true));
        Assert.Equal([2UL], k.ReadKeys().Keys);
    }

    [Fact]
    public void CorruptStoreRefusesToBuildTheEngine()
    {
        var fs = new CrashFileSystem();
        var store = new FileReservationStore(Dir, VolumeKey, fs);
        store.Save(State(2));
        using (var f = fs.Create(store.Path)) f.Write([1, 2, 3]);
        Assert.Throws<ReservationStoreException>(() => new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs)));
    }

    [Fact]
    public void AdministrativeClearPersistsAndTellsFormerRegistrants()
    {
        var fs = new CrashFileSystem();
        var k = new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs));
        Good(k.Register(k[0], 0, 1));
        Good(k.Register(k[1], 0, 2));
        Good(k.Reserve(k[0], 1, PersistentReservationType.ExclusiveAccess));
        var snap = k.Pr.Snapshot();
        Assert.Equal(2, snap.Registrations.Count);
        Assert.Equal(k[0], snap.Holder);
        Assert.True(snap.Registrations[0].IsHolder);
        Assert.Equal(PersistentReservationType.ExclusiveAccess, snap.Type);
        k.Pr.AdministrativeClear();
        Assert.Empty(k.Pr.Snapshot().Registrations);
        Assert.Equal([SenseCode.ReservationsPreempted], k.TakeUnitAttentions(k[0]));
        Assert.Equal([SenseCode.ReservationsPreempted], k.TakeUnitAttentions(k[1]));
        Assert.Empty(k.TakeUnitAttentions(k[2]));
        Assert.Empty(new PrTestKit(store: new FileReservationStore(Dir, VolumeKey, fs)).ReadKeys().Keys);
    }
}
