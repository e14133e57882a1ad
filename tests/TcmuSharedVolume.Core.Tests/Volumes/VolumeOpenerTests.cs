using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Reservations;
using TcmuSharedVolume.Scsi;
using TcmuSharedVolume.Tests.Backends;
using TcmuSharedVolume.Tests.Reservations;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Volumes;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class VolumeOpenerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tsv-open-").FullName;
    private readonly List<Volume> _opened = [];

    public void Dispose()
    {
        foreach (var v in _opened) v.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string State(string host = "host1") => Path.Combine(_dir, "state-" + host);

    private string Disk(string name)
    {
        var p = Path.Combine(_dir, name);
        using (var fs = new FileStream(p, FileMode.CreateNew)) fs.SetLength(1 << 20);
        return p;
    }

    private Volume Open(VolumeOpener opener, string cfg)
    {
        var v = opener.GetOrOpen(VolumeConfig.Parse("sharedvol/" + cfg), 512, v => !_closed.Contains(v));
        if (!_opened.Contains(v)) _opened.Add(v);
        return v;
    }

    private readonly HashSet<Volume> _closed = [];

    private void Close(Volume v)
    {
        _closed.Add(v);
        _opened.Remove(v);
        v.Dispose();
    }

    [Fact]
    public void AHardLinkToTheSameFileGivesTheSameVolume()
    {
        var a = Disk("a.img");
        var b = Path.Combine(_dir, "b.img");
        BackingPathTests.HardLink(a, b);
        var opener = new VolumeOpener(State());

        var va = Open(opener, a);
        var vb = Open(opener, b);
        Assert.Same(va, vb); // one disk, one reservation table
        Assert.NotSame(va, Open(opener, Disk("c.img")));

        // The identity is recorded under the second path too: after a restart that adopts b
        // first, the disk still answers with the same identity.
        Close(va);
        var again = Open(new VolumeOpener(State()), b);
        Assert.Equal(va.Identity.UnitSerial, again.Identity.UnitSerial);
        Assert.Equal(va.Identity.NaaLocallyAssigned, again.Identity.NaaLocallyAssigned);
    }

    [Fact]
    public void ANewVolumeGetsARandomIdentityThatIsKeptAcrossRestarts()
    {
        var disk = Disk("vol.img");
        var first = Open(new VolumeOpener(State()), disk);
        Assert.NotEqual(VolumeIdentity.FromBackingPath(disk).UnitSerial, first.Identity.UnitSerial);
        Assert.Matches("^[0-9a-f]{32}$", first.Identity.UnitSerial);
        Assert.Equal(3UL, first.Identity.NaaLocallyAssigned >> 60);
        var record = new VolumeIdentityStore(State()).FileOf(disk);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(record));
        Close(first);

        var restarted = Open(new VolumeOpener(State()), disk);
        Assert.Equal(first.Identity.UnitSerial, restarted.Identity.UnitSerial);
        Assert.Equal(first.Identity.NaaLocallyAssigned, restarted.Identity.NaaLocallyAssigned);
    }

    [Fact]
    public void TheSamePathOnTwoHostsIsTwoIdentities()
    {
        // Two hosts serve their own /srv/vol.img: two state directories, two different disks.
        var disk = Disk("vol.img");
        var host1 = Open(new VolumeOpener(State("host1")), disk);
        Close(host1);
        var host2 = Open(new VolumeOpener(State("host2")), disk);
        Assert.NotEqual(host1.Identity.UnitSerial, host2.Identity.UnitSerial);
        Assert.NotEqual(host1.Identity.NaaLocallyAssigned, host2.Identity.NaaLocallyAssigned);
    }

    [Fact]
    public void ASecondDiskWithASerialInUseIsRefused()
    {
        var opener = new VolumeOpener(State());
        var first = Open(opener, Disk("one.img") + ";serial=shared1");
        var e = Assert.Throws<VolumeConflictException>(() => Open(opener, Disk("two.img") + ";serial=shared1"));
        Assert.Contains("serial shared1 is already the identity of", e.Message);
        Assert.Contains("one.img", e.Message);
        // The first keeps serving, and once it is gone the name is free again.
        Assert.Equal("shared1", first.Identity.UnitSerial);
        Close(first);
        Assert.Equal("shared1", Open(opener, Path.Combine(_dir, "two.img") + ";serial=shared1").Identity.UnitSerial);
    }

    [Fact]
    public void AVolumeWithStateUnderItsPathDerivedSerialKeepsThatIdentityOnUpgrade()
    {
        // A state file exactly as the previous version wrote it: keyed by the serial it made
        // from a hash of the path with links resolved.
        var disk = Disk("old.img");
        var legacy = VolumeIdentity.FromBackingPath(VolumeConfig.ResolveCanonicalPath(disk));
        var nexus = PrTestKit.Nexus(1);
        new FileReservationStore(State(), legacy.UnitSerial).Save(
            new PersistedReservations(false, [new Registration(nexus, 0xABCD, false)], PersistentReservationType.None, -1));

        var upgraded = Open(new VolumeOpener(State()), disk);
        Assert.Equal(legacy.UnitSerial, upgraded.Identity.UnitSerial);
        Assert.Equal(legacy.NaaLocallyAssigned, upgraded.Identity.NaaLocallyAssigned);
        // ... and finds its registrations.
        Assert.Equal(0xABCDUL, Assert.Single(upgraded.Reservations.Snapshot().Registrations).Key);
        Close(upgraded);

        // Recorded now: kept on the next start too.
        var identityFile = new VolumeIdentityStore(State()).FileOf(disk);
        Assert.Contains($"serial={legacy.UnitSerial}", File.ReadAllText(identityFile));
        var next = Open(new VolumeOpener(State()), disk);
        Assert.Equal(legacy.UnitSerial, next.Identity.UnitSerial);
        Assert.Equal(legacy.NaaLocallyAssigned, next.Identity.NaaLocallyAssigned);
    }

    [Fact]
    public void ADamagedIdentityFileRefusesTheVolumeInsteadOfInventingANewIdentity()
    {
        var disk = Disk("d.img");
        Close(Open(new VolumeOpener(State()), disk));
        var file = new VolumeIdentityStore(State()).FileOf(disk);
        File.WriteAllText(file, File.ReadAllText(file).Replace("naa=3", "naa=Z"));
        var e = Assert.Throws<InvalidDataException>(() => Open(new VolumeOpener(State()), disk));
        Assert.Contains("naa=", e.Message);
    }

    [Fact]
    public void APathRecordedWithAnotherIdentityCannotJoinAnOpenDisk()
    {
        // b.img was a disk of its own; then it was replaced by a hard link to a.img.
        var a = Disk("a.img");
        var b = Disk("b.img");
        Close(Open(new VolumeOpener(State()), b));
        File.Delete(b);
        BackingPathTests.HardLink(a, b);

        var opener = new VolumeOpener(State());
        Open(opener, a);
        var e = Assert.Throws<VolumeConflictException>(() => Open(opener, b));
        Assert.Contains("cannot have two identities", e.Message);
    }
}
