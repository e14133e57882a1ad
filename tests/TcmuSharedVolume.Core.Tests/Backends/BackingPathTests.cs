using TcmuSharedVolume.Backends;
using TcmuSharedVolume.Volumes;

namespace TcmuSharedVolume.Tests.Backends;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class BackingPathTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("tsv-path-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private const UnixFileMode Mode1777 = UnixFileMode.StickyBit
        | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
        | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>A directory like /tmp: sticky and world-writable.</summary>
    private string StickyDir()
    {
        var d = Directory.CreateDirectory(Path.Combine(_dir, "tmp")).FullName;
        File.SetUnixFileMode(d, Mode1777);
        return d;
    }

    private string Disk(string name, int size = 1 << 20)
    {
        var p = Path.Combine(_dir, name);
        using (var fs = new FileStream(p, FileMode.CreateNew)) fs.SetLength(size);
        return p;
    }

    [Fact]
    public void ALinkPlantedInAStickyWorldWritableDirectoryIsNotFollowed()
    {
        // The attack: a user plants /tmp/vol.img -> /dev/sda before root creates the backstore.
        var victim = Disk("victim.img");
        var link = Path.Combine(StickyDir(), "vol.img");
        File.CreateSymbolicLink(link, victim);

        var e = Assert.Throws<BackingStoreException>(() => BackingStores.Open(link));
        Assert.Contains("sticky world-writable", e.Message);
        Assert.Contains(link, e.Message);
        Assert.Throws<BackingStoreException>(() => SparseFileStore.Open(link));
        // Not even when a size is given: the link must not be followed to create its target either.
        Assert.Throws<BackingStoreException>(() => BackingStores.Open(link, new BackingStoreOptions { CreateSizeBytes = 1 << 20 }));
    }

    [Fact]
    public void ALinkedDirectoryInAStickyWorldWritableDirectoryIsNotFollowedEither()
    {
        var elsewhere = Directory.CreateDirectory(Path.Combine(_dir, "attacker")).FullName;
        Disk("attacker/vol.img");
        Directory.CreateSymbolicLink(Path.Combine(StickyDir(), "disks"), elsewhere);

        var e = Assert.Throws<BackingStoreException>(() => BackingStores.Open(Path.Combine(_dir, "tmp", "disks", "vol.img")));
        Assert.Contains("sticky world-writable", e.Message);
    }

    [Fact]
    public void LinksInOrdinaryDirectoriesAreFollowedAndGroupWithTheirTarget()
    {
        // /dev/vg/lv -> ../dm-3 is the normal case and must keep working.
        var real = Disk("real.img");
        var sub = Directory.CreateDirectory(Path.Combine(_dir, "vg")).FullName;
        File.CreateSymbolicLink(Path.Combine(sub, "lv"), "../real.img");

        using var viaLink = BackingPath.Resolve(Path.Combine(sub, "lv"));
        using var direct = BackingPath.Resolve(real);
        Assert.Equal(real, viaLink.ResolvedPath);
        Assert.Equal(direct.Key, viaLink.Key);
        using var store = viaLink.Open();
        Assert.Equal(1 << 20, store.SizeBytes);
    }

    [Fact]
    public void AHardLinkIsTheSameDisk()
    {
        var a = Disk("a.img");
        var b = Path.Combine(_dir, "b.img");
        HardLink(a, b);
        using var pa = BackingPath.Resolve(a);
        using var pb = BackingPath.Resolve(b);
        Assert.NotNull(pa.Key);
        Assert.Equal(pa.Key, pb.Key);
        using var other = BackingPath.Resolve(Disk("c.img"));
        Assert.NotEqual(pa.Key, other.Key);
    }

    [Fact]
    public void ADirectoryAndAMissingParentAreRefusedWithAReason()
    {
        Assert.Contains("is a directory", Assert.Throws<BackingStoreException>(() => BackingStores.Open(_dir)).Message);
        Assert.Contains("does not exist", Assert.Throws<BackingStoreException>(() => BackingStores.Open(Path.Combine(_dir, "no", "x.img"))).Message);
        Assert.Throws<FileNotFoundException>(() => BackingStores.Open(Path.Combine(_dir, "none.img")));
    }

    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    [Fact]
    public void EveryCreatorMakesTheDiskReadableByRootOnly()
    {
        // The daemon opening a missing file with size=, the config's own creation, and the
        // helper tsvctl volume create uses: one mode, 0600, whatever the umask lets through.
        var opened = Path.Combine(_dir, "opened.img");
        using (SparseFileStore.Open(opened, new BackingStoreOptions { CreateSizeBytes = 1 << 20 })) { }
        Assert.Equal(Mode0600, File.GetUnixFileMode(opened));

        var viaStores = Path.Combine(_dir, "stores.img");
        using (BackingStores.Open(viaStores, new BackingStoreOptions { CreateSizeBytes = 1 << 20, Preallocate = true })) { }
        Assert.Equal(Mode0600, File.GetUnixFileMode(viaStores));

        var viaConfig = Path.Combine(_dir, "config.img");
        Assert.True(VolumeConfig.Parse($"sharedvol/{viaConfig};size=1M").CreateIfMissing().Ok);
        Assert.Equal(Mode0600, File.GetUnixFileMode(viaConfig));

        var helper = Path.Combine(_dir, "helper.img");
        BackingPath.CreateFile(helper, 4 << 20);
        Assert.Equal(Mode0600, File.GetUnixFileMode(helper));
        Assert.Equal(4 << 20, new FileInfo(helper).Length);
        Assert.Equal(Libc_EEXIST, Assert.Throws<BackingStoreException>(() => BackingPath.CreateFile(helper, 1 << 20)).Errno);
        Assert.Equal(4 << 20, new FileInfo(helper).Length);
    }

    private const int Libc_EEXIST = 17;

    /// <summary>ln(1): the base library has no hard-link call.</summary>
    internal static void HardLink(string existing, string link)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("ln") { RedirectStandardError = true };
        psi.ArgumentList.Add(existing);
        psi.ArgumentList.Add(link);
        using var p = System.Diagnostics.Process.Start(psi)!;
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, p.StandardError.ReadToEnd());
    }

    [Fact]
    public void CreatingThroughALinkInAStickyDirectoryIsRefused()
    {
        // A dangling link planted where the administrator will create the disk: O_CREAT would
        // follow it and create (or truncate) whatever the link names.
        var target = Path.Combine(_dir, "target-of-link.img");
        var link = Path.Combine(StickyDir(), "new.img");
        File.CreateSymbolicLink(link, target);
        Assert.Throws<BackingStoreException>(() => BackingPath.CreateFile(link, 1 << 20));
        Assert.False(File.Exists(target));
    }
}
