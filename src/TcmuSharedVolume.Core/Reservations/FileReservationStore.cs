using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using TcmuSharedVolume.Diagnostics;
using TcmuSharedVolume.Interop;
using TcmuSharedVolume.Scsi;

namespace TcmuSharedVolume.Reservations;

/// <summary>The few file operations a crash-safe commit needs, so tests can fail or "crash" at each.</summary>
public interface IReservationFileSystem
{
    /// <summary>The whole file, or null when it does not exist.</summary>
    byte[]? ReadAll(string path);

    bool Exists(string path);

    void CreateDirectory(string path);

    /// <summary>Creates or truncates a file for writing (mode 0600).</summary>
    IReservationFile Create(string path);

    /// <summary>Atomically replaces <paramref name="to"/> with <paramref name="from"/> (rename(2)).</summary>
    void Rename(string from, string to);

    /// <summary>Makes the directory's entries (creates, renames) durable: open(O_DIRECTORY) + fsync.</summary>
    void SyncDirectory(string path);

    /// <summary>What tells one boot of the host from the next (the kernel's random boot_id), or
    /// null when it cannot be read.</summary>
    string? BootId { get; }
}

public interface IReservationFile : IDisposable
{
    void Write(ReadOnlySpan<byte> data);

    /// <summary>fsync(2): the file's data is durable when this returns.</summary>
    void Sync();
}

/// <summary>
/// Stores one volume's reservation table in <c>directory/&lt;key&gt;.pr</c>, crash-safely
/// (docs/reservations.md §16): the new state goes to <c>.tmp</c>, is fsynced, the current file is
/// kept as <c>.prev</c>, the temp file is renamed over the current one and the directory is
/// fsynced, all before <see cref="Save"/> returns. A crash at any point leaves either the old
/// or the new state loadable. The file carries a format version, a 64-bit commit epoch that
/// only grows, the volume key and a CRC-32C; a damaged current file is reported, never replaced
/// by an empty table.
/// <para>
/// The state is saved whatever APTPL says, so that a daemon restart (which the initiators never
/// see as a power loss) keeps it. The file also records the host's boot: once the host has been
/// restarted, which is the target's power loss, a state whose last APTPL was 0 is released, as
/// SPC-4 5.14.5 requires; with APTPL=1 it is kept.
/// </para>
/// </summary>
public sealed class FileReservationStore : IReservationStore
{
    // File layout (little-endian):
    //   0  8  magic "TSVPRTAB"
    //   8  4  format version (1)
    //  12  8  commit epoch
    //  20  4  payload length N
    //  24  N  payload: volume key, boot id (version 2 on), APTPL, type, holder index, registrations
    //  24+N 4 CRC-32C of bytes [0, 24+N)
    // Version 1 files (no boot id) are read as saved in this boot: nothing is dropped on a guess.
    private static ReadOnlySpan<byte> Magic => "TSVPRTAB"u8;
    private const uint FormatVersion = 2;
    private const int HeaderLength = 24;

    private readonly IReservationFileSystem _fs;
    private readonly string _volumeKey;
    private readonly Lock _lock = new();
    private ulong _epoch;
    private bool _epochKnown;

    public FileReservationStore(string directory, string volumeKey)
        : this(directory, volumeKey, new LinuxReservationFileSystem())
    {
    }

    public FileReservationStore(string directory, string volumeKey, IReservationFileSystem fileSystem)
    {
        _fs = fileSystem;
        _volumeKey = volumeKey;
        Directory = directory;
        Path = System.IO.Path.Combine(directory, FileName(volumeKey));
    }

    public string Directory { get; }

    /// <summary>The current file; <c>.prev</c> and <c>.tmp</c> sit beside it.</summary>
    public string Path { get; }

    private string PreviousPath => Path + ".prev";
    private string TempPath => Path + ".tmp";

    /// <summary>A readable, collision-free file name for any volume key (a path, an LV name...).</summary>
    public static string FileName(string volumeKey)
    {
        var sb = new StringBuilder();
        foreach (char c in volumeKey.Trim('/'))
            sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' ? c : '_');
        if (sb.Length > 80) sb.Length = 80;
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(volumeKey)).AsSpan(0, 8));
        return $"{sb}-{hash}.pr";
    }

    /// <summary>Whether any committed state (current or previous generation) exists for the key.</summary>
    public static bool HasState(string directory, string volumeKey, IReservationFileSystem? fileSystem = null)
    {
        fileSystem ??= new LinuxReservationFileSystem();
        var path = System.IO.Path.Combine(directory, FileName(volumeKey));
        return fileSystem.Exists(path) || fileSystem.Exists(path + ".prev");
    }

    public PersistedReservations? Load()
    {
        lock (_lock)
        {
            var current = _fs.ReadAll(Path);
            var previous = _fs.ReadAll(PreviousPath);
            if (current is null && previous is null)
            {
                _epochKnown = true;
                return null;
            }
            if (current is null)
            {
                // A crash between "current -> .prev" and ".tmp -> current": .prev is the last
                // committed state (the new one never returned GOOD).
                var (epoch, state, boot) = Decode(previous!, PreviousPath);
                Log.Warning($"reservations: {Path} missing, recovered the committed state (epoch {epoch}) from {PreviousPath}");
                _epoch = epoch;
                _epochKnown = true;
                return AfterRestart(state, boot);
            }
            try
            {
                var (epoch, state, boot) = Decode(current, Path);
                _epoch = epoch;
                _epochKnown = true;
                if (previous is not null && TryEpoch(previous) is { } prevEpoch && prevEpoch > epoch)
                    throw new ReservationStoreException($"{PreviousPath} (epoch {prevEpoch}) is newer than {Path} (epoch {epoch}); refusing to guess which is the committed state");
                return AfterRestart(state, boot);
            }
            catch (ReservationStoreException e) when (previous is not null)
            {
                // Falling back silently could re-register a fenced node; say what an operator can do.
                throw new ReservationStoreException(
                    $"{e.Message}. The previous generation {PreviousPath} may be restored by hand after checking it; the volume is not served until then.", e);
            }
        }
    }

    /// <summary>SPC-4 5.14.5: at the target's power loss (here: the host was restarted since the
    /// state was saved) registrations and the reservation are released unless APTPL was 1.</summary>
    private PersistedReservations AfterRestart(PersistedReservations state, string? savedInBoot)
    {
        if (state.Aptpl || savedInBoot is null || _fs.BootId is not { } now || now == savedInBoot
            || (state.Registrations.Count == 0 && state.Type == PersistentReservationType.None))
            return state;
        Log.Notice($"reservations of '{_volumeKey}': the host restarted since they were saved and APTPL was 0, " +
                   $"so {state.Registrations.Count} registrations and the reservation are released (SPC-4 5.14.5)");
        return PersistedReservations.Empty;
    }

    public void Save(PersistedReservations state)
    {
        lock (_lock)
        {
            if (!_epochKnown)
            {
                // Saving without a Load first: continue above whatever is on disk.
                foreach (var existing in new[] { _fs.ReadAll(Path), _fs.ReadAll(PreviousPath) })
                    if (existing is not null && TryEpoch(existing) is { } e && e > _epoch)
                        _epoch = e;
                _epochKnown = true;
            }
            ulong epoch = ++_epoch; // never reused, even after a failed attempt
            var bytes = Encode(state, epoch, _volumeKey, _fs.BootId);
            _fs.CreateDirectory(Directory);
            using (var file = _fs.Create(TempPath))
            {
                file.Write(bytes);
                file.Sync();
            }
            if (_fs.Exists(Path))
                _fs.Rename(Path, PreviousPath);
            _fs.Rename(TempPath, Path);
            _fs.SyncDirectory(Directory);
        }
    }

    // ------------------------------------------------------------------ format

    internal static byte[] Encode(PersistedReservations state, ulong epoch, string volumeKey, string? bootId)
    {
        var payload = new ArrayBufferWriterLite();
        payload.String(volumeKey);
        payload.String(bootId ?? "");
        payload.Byte(state.Aptpl ? (byte)1 : (byte)0);
        payload.Byte((byte)state.Type);
        payload.Int32(state.HolderIndex);
        payload.Int32(state.Registrations.Count);
        foreach (var r in state.Registrations)
            payload.Registration(r);
        var body = payload.Written;
        var file = new byte[HeaderLength + body.Length + 4];
        Magic.CopyTo(file);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), FormatVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(12), epoch);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(20), (uint)body.Length);
        body.CopyTo(file.AsSpan(HeaderLength));
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(HeaderLength + body.Length), Crc32C(file.AsSpan(0, HeaderLength + body.Length)));
        return file;
    }

    private static ulong? TryEpoch(byte[] data)
    {
        try { return CheckFrame(data, "").Epoch; }
        catch (ReservationStoreException) { return null; }
    }

    private static (ulong Epoch, int PayloadLength, uint Version) CheckFrame(byte[] data, string path)
    {
        if (data.Length < HeaderLength + 4)
            throw new ReservationStoreException($"reservation state file {path} is truncated ({data.Length} bytes)");
        if (!data.AsSpan(0, 8).SequenceEqual(Magic))
            throw new ReservationStoreException($"{path} is not a reservation state file (bad magic)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(8));
        if (version is 0 or > FormatVersion)
            throw new ReservationStoreException($"reservation state file {path} has format version {version}; this daemon reads 1 to {FormatVersion}");
        uint length = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(20));
        if ((long)HeaderLength + length + 4 != data.Length)
            throw new ReservationStoreException($"reservation state file {path} is truncated or has trailing bytes (payload {length}, file {data.Length} bytes)");
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(HeaderLength + (int)length));
        if (stored != Crc32C(data.AsSpan(0, HeaderLength + (int)length)))
            throw new ReservationStoreException($"reservation state file {path} is corrupt (checksum mismatch)");
        return (BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(12)), (int)length, version);
    }

    /// <returns>The boot the state was saved in: null when the file does not say (version 1, or
    /// the boot id could not be read then).</returns>
    internal (ulong Epoch, PersistedReservations State, string? SavedInBoot) Decode(byte[] data, string path)
    {
        var (epoch, length, version) = CheckFrame(data, path);
        try
        {
            var r = new PayloadReader(data.AsSpan(HeaderLength, length));
            string key = r.String();
            if (key != _volumeKey)
                throw new ReservationStoreException($"reservation state file {path} belongs to volume '{key}', not '{_volumeKey}'");
            string? boot = version >= 2 ? r.String() : null;
            if (boot?.Length == 0) boot = null;
            bool aptpl = r.Byte() != 0;
            var type = (PersistentReservationType)r.Byte();
            int holder = r.Int32();
            int count = r.Int32();
            if (count < 0 || count > length / 16)
                throw new ReservationStoreException($"reservation state file {path} has an impossible registration count {count}");
            var regs = new Registration[count];
            for (int i = 0; i < count; i++)
                regs[i] = r.Registration();
            if (!r.End)
                throw new ReservationStoreException($"reservation state file {path} has trailing payload bytes");
            if (type != PersistentReservationType.None && !PersistentReservationTypes.IsValid((byte)type))
                throw new ReservationStoreException($"reservation state file {path} has invalid reservation type {(byte)type}");
            return (epoch, new PersistedReservations(aptpl, regs, type, holder), boot);
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new ReservationStoreException($"reservation state file {path} has a malformed payload", e);
        }
    }

    /// <summary>CRC-32C (Castagnoli), hardware-accelerated where the CPU has it.</summary>
    internal static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        while (data.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
            data = data[8..];
        }
        foreach (byte b in data)
            crc = BitOperations.Crc32C(crc, b);
        return ~crc;
    }

    internal sealed class ArrayBufferWriterLite
    {
        private readonly MemoryStream _ms = new();
        public ReadOnlySpan<byte> Written => _ms.GetBuffer().AsSpan(0, (int)_ms.Length);
        public void Byte(byte v) => _ms.WriteByte(v);
        public void UInt16(ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); _ms.Write(b); }
        public void Int32(int v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, v); _ms.Write(b); }
        public void UInt64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); _ms.Write(b); }
        public void String(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            if (bytes.Length > ushort.MaxValue) throw new ArgumentException("name too long for the reservation file", nameof(s));
            UInt16((ushort)bytes.Length);
            _ms.Write(bytes);
        }

        /// <summary>Key, ALL_TG_PT, then the nexus (<see cref="Nexus"/>).</summary>
        public void Registration(Registration r)
        {
            UInt64(r.Key);
            Byte(r.AllTargetPorts ? (byte)1 : (byte)0);
            Nexus(r.Nexus);
        }

        /// <summary>Initiator protocol, name and ISID (empty: none), target protocol, name and RTPI.</summary>
        public void Nexus(ItNexus n)
        {
            Byte((byte)n.Initiator.Protocol);
            String(n.Initiator.Name);
            String(n.Initiator.Isid ?? "");
            Byte((byte)n.Target.Protocol);
            String(n.Target.Name);
            UInt16(n.Target.RelativeTargetPortId);
        }
    }

    /// <summary>Bounds-checked reader; running off the end throws ArgumentOutOfRangeException.</summary>
    internal ref struct PayloadReader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _rest = data;
        public readonly bool End => _rest.IsEmpty;

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n > _rest.Length) throw new ArgumentOutOfRangeException(nameof(n), "payload ends early");
            var s = _rest[..n];
            _rest = _rest[n..];
            return s;
        }

        public byte Byte() => Take(1)[0];
        public ushort UInt16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
        public int Int32() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        public ulong UInt64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
        public string String()
        {
            int n = UInt16();
            try { return new UTF8Encoding(false, true).GetString(Take(n)); }
            catch (DecoderFallbackException e) { throw new ArgumentOutOfRangeException("invalid UTF-8 in name", e); }
        }

        public Registration Registration()
        {
            ulong key = UInt64();
            bool allTgPt = Byte() != 0;
            return new Registration(Nexus(), key, allTgPt);
        }

        public ItNexus Nexus()
        {
            var ip = (ProtocolId)Byte();
            string name = String();
            string isid = String();
            var tp = (ProtocolId)Byte();
            string target = String();
            ushort rtpi = UInt16();
            return new ItNexus(new InitiatorPort(ip, name, isid.Length == 0 ? null : isid), new TargetPort(tp, target, rtpi));
        }
    }
}

/// <summary>The real file system, through libc so that fsync and directory fsync are explicit.</summary>
public sealed class LinuxReservationFileSystem : IReservationFileSystem
{
    public byte[]? ReadAll(string path)
    {
        try { return File.ReadAllBytes(path); }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    public bool Exists(string path) => File.Exists(path);

    public void CreateDirectory(string path) => System.IO.Directory.CreateDirectory(path);

    public string? BootId { get; } = ReadBootId();

    private static string? ReadBootId()
    {
        try { return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public IReservationFile Create(string path)
    {
        // O_NOFOLLOW: a link planted in a state directory that is not ours alone is not followed.
        int fd = Libc.open(path, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_TRUNC | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x180 /* 0600 */);
        if (fd < 0) throw Error("open", path);
        return new FdFile(fd, path);
    }

    public void Rename(string from, string to)
    {
        if (Libc.rename(from, to) != 0) throw Error("rename", $"{from} -> {to}");
    }

    public void SyncDirectory(string path)
    {
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw Error("open", path);
        try
        {
            if (Libc.fsync(fd) != 0) throw Error("fsync", path);
        }
        finally
        {
            Libc.close(fd);
        }
    }

    private static IOException Error(string call, string what)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new IOException($"{call} {what}: {Libc.ErrorMessage(errno)}", errno);
    }

    private sealed class FdFile(int fd, string path) : IReservationFile
    {
        private int _fd = fd;

        public unsafe void Write(ReadOnlySpan<byte> data)
        {
            while (!data.IsEmpty)
            {
                nint n;
                fixed (byte* p = data)
                    n = Libc.write(_fd, p, data.Length);
                if (n < 0)
                {
                    if (Marshal.GetLastPInvokeError() == Libc.EINTR) continue;
                    throw Error("write", path);
                }
                data = data[(int)n..];
            }
        }

        public void Sync()
        {
            if (Libc.fsync(_fd) != 0) throw Error("fsync", path);
        }

        public void Dispose()
        {
            if (_fd >= 0) Libc.close(_fd);
            _fd = -1;
        }
    }
}
