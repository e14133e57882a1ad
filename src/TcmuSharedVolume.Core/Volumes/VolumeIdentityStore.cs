using System.Globalization;
using System.Text;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Reservations;

namespace TcmuSharedVolume.Volumes;

/// <summary>
/// Keeps each volume's identity (unit serial and NAA designator) in the state directory, beside
/// its reservation state, as <c>&lt;path&gt;-&lt;hash&gt;.id</c>: made once, at random, when the
/// volume is first served, and read back on every later start, so the disk answers INQUIRY the
/// same way for as long as it exists and no other disk ever answers the same.
/// <para>
/// The key of a stored identity is the backing path as configured on this host. The state
/// directory belongs to one host, and on one host a path names one disk; the same path on another
/// host is another state directory, hence another random identity. The alternatives were
/// rejected: the opened file's (st_dev, st_ino) change when a file is copied, restored from a
/// backup or its file system recreated, and st_dev itself changes between boots for device-mapper
/// and btrfs; the path with its links resolved names <c>/dev/dm-N</c> for an LV, whose number
/// depends on activation order. A disk reached by a second path (a hard link, <c>/dev/mapper/…</c>
/// beside <c>/dev/vg/lv</c>) is one volume (grouped by what is opened), and its identity is
/// recorded under that path too, so that it is found whichever path is adopted first.
/// </para>
/// <para>
/// Volumes first served before identities were stored had a serial made from a hash of their
/// path. A volume whose reservation state is stored under that serial keeps it, and it is recorded
/// here on first use; without such state nothing tells it from a new volume, and it gets a new one.
/// </para>
/// </summary>
public sealed class VolumeIdentityStore
{
    private const string Header = "# TcmuSharedVolume volume identity. Do not edit: initiators and multipath match the disk by it.";
    private readonly IReservationFileSystem _fs;

    public VolumeIdentityStore(string directory, IReservationFileSystem? fileSystem = null)
    {
        Directory = directory;
        _fs = fileSystem ?? new LinuxReservationFileSystem();
    }

    public string Directory { get; }

    /// <summary>The file that holds the identity of the volume at <paramref name="path"/>.</summary>
    public string FileOf(string path)
    {
        var name = FileReservationStore.FileName(path);
        return System.IO.Path.Combine(Directory, name[..^".pr".Length] + ".id");
    }

    /// <summary>The stored identity of <paramref name="path"/>, or null when none is stored.
    /// Throws <see cref="InvalidDataException"/> when the file is there but unreadable: making a
    /// new identity then would silently present the disk as another one.</summary>
    public VolumeIdentity? Find(string path)
    {
        var file = FileOf(path);
        var bytes = _fs.ReadAll(file);
        if (bytes is null) return null;
        string text;
        try { text = new UTF8Encoding(false, true).GetString(bytes); }
        catch (DecoderFallbackException) { throw Corrupt(file, "it is not UTF-8 text"); }
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line.StartsWith('#')) continue;
            int eq = line.IndexOf('=');
            if (eq <= 0 || !values.TryAdd(line[..eq], line[(eq + 1)..]))
                throw Corrupt(file, $"line '{line}' is not a single key=value");
        }
        if (!values.TryGetValue("version", out var version) || version != "1")
            throw Corrupt(file, "it has no version=1 line");
        if (!values.TryGetValue("path", out var storedPath) || storedPath != path)
            throw Corrupt(file, $"it belongs to path '{storedPath}', not '{path}'");
        if (!values.TryGetValue("serial", out var serial) || !VolumeIdentity.IsValidSerial(serial))
            throw Corrupt(file, "its serial= is missing or not 1-64 printable characters");
        if (!values.TryGetValue("naa", out var naaText) || naaText.Length != 16
            || !ulong.TryParse(naaText, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var naa) || naa >> 60 != 3)
            throw Corrupt(file, "its naa= is missing or not 16 hex digits of an NAA 3h designator");
        return new VolumeIdentity(serial, naa);
    }

    private static InvalidDataException Corrupt(string file, string why) =>
        new($"volume identity file {file} is unreadable: {why}. Restore it from a backup; removing it gives the disk a new identity, which initiators will see as another disk");

    /// <summary>
    /// Stores the identity crash-safely: a temporary file (mode 0600, not following links),
    /// fsync, rename over the final name, fsync of the directory, before the volume is served.
    /// </summary>
    public void Save(string path, VolumeIdentity identity, string origin)
    {
        var file = FileOf(path);
        var text = new StringBuilder()
            .Append(Header).Append('\n')
            .Append("version=1\n")
            .Append("path=").Append(path).Append('\n')
            .Append("serial=").Append(identity.UnitSerial).Append('\n')
            .Append("naa=").Append(identity.NaaLocallyAssigned.ToString("x16", CultureInfo.InvariantCulture)).Append('\n')
            .Append("origin=").Append(origin).Append('\n')
            .ToString();
        _fs.CreateDirectory(Directory);
        var temp = file + ".tmp";
        using (var f = _fs.Create(temp))
        {
            f.Write(Encoding.UTF8.GetBytes(text));
            f.Sync();
        }
        _fs.Rename(temp, file);
        _fs.SyncDirectory(Directory);
    }

    /// <summary>
    /// The identity the volume at <paramref name="path"/> has: the stored one; else, for a volume
    /// served before identities were stored, its path-derived serial when reservation state exists
    /// under it (<paramref name="legacyCanonicalPath"/> is the path with links resolved, as that
    /// serial was made); else a new random one. <c>Stored</c> is false when the caller must
    /// <see cref="Save"/> it (after the volume has been opened, so that a disk that cannot be
    /// served leaves nothing behind).
    /// </summary>
    public (VolumeIdentity Identity, bool Stored, string Origin) Resolve(string path, string legacyCanonicalPath)
    {
        if (Find(path) is { } stored) return (stored, true, "stored");
        var legacy = VolumeIdentity.FromBackingPath(legacyCanonicalPath);
        if (FileReservationStore.HasState(Directory, legacy.UnitSerial, _fs))
        {
            Log.Notice($"{path}: keeps serial {legacy.UnitSerial}, made from its path by an earlier version, because its reservation state is stored under it");
            return (legacy, false, "path-hash (kept on upgrade)");
        }
        return (VolumeIdentity.NewRandom(Guid.NewGuid()), false, "random");
    }
}
