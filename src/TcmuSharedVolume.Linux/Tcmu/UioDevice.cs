using System.Globalization;
using System.Runtime.InteropServices;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Linux.Tcmu;

/// <summary>What <c>/sys/class/uio/uioN</c> says about one UIO device.</summary>
public readonly record struct UioDeviceInfo(int Minor, string Name, long MapSize);

/// <summary>A file descriptor that signals new ring entries: each notification is an edge for
/// epoll (EPOLLET), so the event loop never has to read it; POLLERR/POLLHUP mean the device is gone.</summary>
public interface IRingEventSource
{
    int Fd { get; }
}

/// <summary>
/// One TCMU UIO device: <c>/dev/uioN</c> opened O_RDWR|O_NONBLOCK|O_CLOEXEC and its single map
/// mmapped whole (docs/tcmu.md §3). The event loop waits on it edge-triggered; 4-byte writes make
/// the kernel reap completions. Every failure is an exception carrying errno's text; nothing here ends the process.
/// </summary>
public sealed unsafe class UioDevice : IRingNotifier, IRingEventSource, IDisposable
{
    public const string DefaultSysfsRoot = "/sys/class/uio";
    public const string DefaultDevRoot = "/dev";

    private int _fd;
    private byte* _base;

    private UioDevice(UioDeviceInfo info, int fd, byte* @base)
    {
        Info = info;
        _fd = fd;
        _base = @base;
    }

    public UioDeviceInfo Info { get; }
    public int Minor => Info.Minor;
    public string Name => Info.Name;
    public long Length => Info.MapSize;
    public int Fd => _fd;

    /// <summary>Start of the mapping: mailbox, then ring, then data area.</summary>
    public byte* Base => _base != null ? _base : throw new ObjectDisposedException(nameof(UioDevice));

    /// <summary>Every uioN under <paramref name="sysfsRoot"/> whose name and map size can be read.</summary>
    public static IReadOnlyList<UioDeviceInfo> Enumerate(string sysfsRoot = DefaultSysfsRoot)
    {
        var found = new List<UioDeviceInfo>();
        if (!Directory.Exists(sysfsRoot)) return found;
        foreach (var dir in Directory.EnumerateFileSystemEntries(sysfsRoot, "uio*"))
        {
            if (!int.TryParse(Path.GetFileName(dir).AsSpan(3), NumberStyles.None, CultureInfo.InvariantCulture, out int minor))
                continue;
            try
            {
                found.Add(ReadInfo(sysfsRoot, minor));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                // A device vanishing between listing and reading is normal; skip it.
            }
        }
        found.Sort((a, b) => a.Minor.CompareTo(b.Minor));
        return found;
    }

    /// <summary>The device whose UIO name is exactly <paramref name="name"/> (tcm-user/N/dev/config), or null.</summary>
    public static UioDeviceInfo? Find(string name, string sysfsRoot = DefaultSysfsRoot)
    {
        foreach (var info in Enumerate(sysfsRoot))
            if (info.Name == name) return info;
        return null;
    }

    /// <summary>Reads name and maps/map0/size of uio<paramref name="minor"/>.</summary>
    public static UioDeviceInfo ReadInfo(string sysfsRoot, int minor)
    {
        string dir = Path.Combine(sysfsRoot, "uio" + minor.ToString(CultureInfo.InvariantCulture));
        string name = File.ReadAllText(Path.Combine(dir, "name"));
        // sysfs adds one '\n'; anything else belongs to the name (docs/tcmu.md §2: dev_config
        // written with echo keeps its own newline).
        if (name.EndsWith('\n')) name = name[..^1];
        long size = ParseMapSize(File.ReadAllText(Path.Combine(dir, "maps", "map0", "size")));
        return new UioDeviceInfo(minor, name, size);
    }

    /// <summary>maps/map0/size is printed with %pa: "0x" and 16 hex digits (docs/tcmu.md §2).</summary>
    public static long ParseMapSize(string text)
    {
        var s = text.AsSpan().Trim();
        if (s.StartsWith("0x", StringComparison.OrdinalIgnoreCase)) s = s[2..];
        if (s.Length == 0 || !long.TryParse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long size) || size <= 0)
            throw new FormatException($"UIO map size '{text.Trim()}' is not a positive hexadecimal number");
        return size;
    }

    /// <summary>Opens /dev/uioN and maps exactly map0/size at offset 0 (the map index, docs/tcmu.md §3).</summary>
    public static UioDevice Open(UioDeviceInfo info, string devRoot = DefaultDevRoot)
    {
        string path = Path.Combine(devRoot, "uio" + info.Minor.ToString(CultureInfo.InvariantCulture));
        int fd = Libc.open(path, Libc.O_RDWR | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            // EBUSY: the kernel allows one open at a time; another handler holds the device.
            throw new IOException($"open {path}: {Libc.ErrorMessage(errno)} (errno {errno})");
        }
        void* map = Libc.mmap(null, (nuint)info.MapSize, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED, fd, 0);
        if (map == Libc.MAP_FAILED)
        {
            int errno = Marshal.GetLastPInvokeError();
            Libc.close(fd);
            throw new IOException($"mmap {path} ({info.MapSize} bytes): {Libc.ErrorMessage(errno)} (errno {errno})");
        }
        return new UioDevice(info, fd, (byte*)map);
    }

    /// <summary>4-byte write: the kernel reaps completions up to cmd_tail synchronously.</summary>
    public void Kick()
    {
        int value = 0;
        while (true)
        {
            nint n = Libc.write(CheckedFd(), &value, sizeof(int));
            if (n == sizeof(int)) return;
            if (n >= 0) throw new IOException($"write uio{Minor}: short write of {n} bytes");
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.EINTR) continue;
            throw new IOException($"write uio{Minor}: {Libc.ErrorMessage(errno)} (errno {errno})");
        }
    }

    /// <summary>munmap and close. Only once no command of this device is in flight: iovecs point
    /// into the mapping.</summary>
    public void Dispose()
    {
        if (_base != null)
        {
            Libc.munmap(_base, (nuint)Info.MapSize);
            _base = null;
        }
        if (_fd >= 0)
        {
            Libc.close(_fd);
            _fd = -1;
        }
    }

    private int CheckedFd() => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(UioDevice));
}
