using System.Runtime.InteropServices;
using System.Text;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Backends;

/// <summary>
/// What one disk is, whatever path reached it: a regular file is its (st_dev, st_ino), a block
/// device its st_rdev (two device nodes of one LV, <c>/dev/vg/lv</c> and <c>/dev/dm-3</c>, are
/// one disk). Paths are grouped into volumes by this, not by their spelling, so that a hard link
/// or a bind mount cannot give one disk two reservation tables.
/// </summary>
public readonly record struct BackingObjectKey(bool IsBlockDevice, ulong Device, ulong Inode)
{
    internal static BackingObjectKey Of(in StatBuffer st) =>
        st.IsBlockDevice ? new(true, st.Rdev, 0) : new(false, st.Dev, st.Ino);

    /// <summary>gnu_dev_major/minor of <see cref="Device"/>.</summary>
    public uint Major => (uint)(((Device >> 8) & 0xFFF) | ((Device >> 32) & ~0xFFFUL));
    public uint Minor => (uint)((Device & 0xFF) | ((Device >> 12) & ~0xFFUL));

    public override string ToString() => IsBlockDevice ? $"block device {Major}:{Minor}" : $"file {Device:x}:{Inode}";
}

/// <summary>
/// A backing path resolved one component at a time with <c>openat(O_PATH | O_NOFOLLOW)</c>, the
/// way the kernel's own lookup would, but checking every symbolic link before following it: a
/// link that sits in a sticky, world-writable directory (<c>/tmp</c>, <c>/var/tmp</c>) is refused,
/// because any local user can plant one there (<c>/tmp/vol.img -&gt; /dev/sda</c>) before the
/// administrator creates the backstore, and this daemon runs as root. Links elsewhere
/// (<c>/dev/vg/lv</c>, <c>/dev/mapper/…</c>) are followed. The object is finally opened relative to
/// the directory descriptor found here with O_NOFOLLOW and compared with what was resolved, so a
/// link swapped in between is refused too, never followed.
/// </summary>
public sealed unsafe class BackingPath : IDisposable
{
    /// <summary>The kernel's MAXSYMLINKS: more links than this in one lookup is ELOOP.</summary>
    private const int MaxLinks = 40;
    private const int Mode0600 = 0x180;

    private int _dirFd;
    private readonly string? _name;

    private BackingPath(string path, string resolvedPath, int dirFd, string? name, BackingObjectKey? key)
    {
        Path = path;
        ResolvedPath = resolvedPath;
        _dirFd = dirFd;
        _name = name;
        Key = key;
    }

    /// <summary>The path as given.</summary>
    public string Path { get; }

    /// <summary>The path with every symbolic link resolved (what the descriptor will be opened at).</summary>
    public string ResolvedPath { get; }

    /// <summary>The object the path names now, or null when it does not exist (yet).</summary>
    public BackingObjectKey? Key { get; private set; }

    public bool Exists => Key is not null;

    /// <summary>Resolves <paramref name="absolutePath"/>; throws <see cref="BackingStoreException"/>
    /// with a sentence the administrator can act on.</summary>
    public static BackingPath Resolve(string absolutePath)
    {
        if (!absolutePath.StartsWith('/'))
            throw new BackingStoreException($"{absolutePath} is not an absolute path", 22);
        var pending = new Stack<string>();
        Push(pending, absolutePath);
        var resolved = new List<string>();
        int links = 0;
        int dir = OpenRoot();
        try
        {
            while (pending.TryPop(out var part))
            {
                if (part == ".") continue;
                if (part == "..")
                {
                    int up = Libc.openat(dir, "..", Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
                    if (up < 0) throw Failure(absolutePath, "open ..", Marshal.GetLastPInvokeError());
                    Libc.close(dir);
                    dir = up;
                    if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1);
                    continue;
                }
                string here = Join(resolved, part);
                int fd = Libc.openat(dir, part, Libc.O_PATH | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
                if (fd < 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    if (errno == Libc.ENOENT && pending.Count == 0)
                    {
                        // The last component is missing: it may be created here, in this directory.
                        resolved.Add(part);
                        var missing = new BackingPath(absolutePath, Join(resolved), dir, part, null);
                        dir = -1;
                        return missing;
                    }
                    if (errno == Libc.ENOENT)
                        throw new BackingStoreException($"{absolutePath}: directory {here} does not exist", errno);
                    throw Failure(absolutePath, $"open {here}", errno);
                }
                StatBuffer st;
                try
                {
                    if (Libc.fstat(fd, &st) < 0) throw Failure(absolutePath, $"fstat {here}", Marshal.GetLastPInvokeError());
                    if (st.IsSymbolicLink)
                    {
                        CheckLinkMayBeFollowed(absolutePath, here, dir, resolved);
                        if (++links > MaxLinks)
                            throw new BackingStoreException($"{absolutePath}: too many levels of symbolic links", Libc.ELOOP);
                        string target = ReadLink(fd, absolutePath, here);
                        if (target.StartsWith('/'))
                        {
                            int root = OpenRoot();
                            Libc.close(dir);
                            dir = root;
                            resolved.Clear();
                        }
                        Push(pending, target);
                        continue;
                    }
                    if (pending.Count == 0)
                    {
                        if (st.IsDirectory)
                            throw new BackingStoreException($"{absolutePath} is a directory: give a file or a block device", Libc.EISDIR);
                        resolved.Add(part);
                        var found = new BackingPath(absolutePath, Join(resolved), dir, part, BackingObjectKey.Of(st));
                        dir = -1;
                        return found;
                    }
                    if (!st.IsDirectory)
                        throw new BackingStoreException($"{absolutePath}: {here} is not a directory", Libc.ENOTDIR);
                    resolved.Add(part);
                    Libc.close(dir);
                    dir = fd;
                    fd = -1;
                }
                finally
                {
                    if (fd >= 0) Libc.close(fd);
                }
            }
            // Only "." and ".." components left over (a link to a directory's parent, say).
            throw new BackingStoreException($"{absolutePath} is a directory: give a file or a block device", Libc.EISDIR);
        }
        finally
        {
            if (dir >= 0) Libc.close(dir);
        }
    }

    /// <summary>
    /// The rule the kernel applies with fs.protected_symlinks, made unconditional for this daemon:
    /// in a sticky, world-writable directory a link may have been planted by any user, so it is
    /// never followed, whoever owns it. The administrator gives the real path instead.
    /// </summary>
    private static void CheckLinkMayBeFollowed(string absolutePath, string link, int dirFd, List<string> resolvedDir)
    {
        StatBuffer d;
        if (Libc.fstat(dirFd, &d) < 0) throw Failure(absolutePath, "fstat", Marshal.GetLastPInvokeError());
        if ((d.Mode & StatBuffer.S_ISVTX) != 0 && (d.Mode & StatBuffer.S_IWOTH) != 0)
            throw new BackingStoreException(
                $"{absolutePath}: {link} is a symbolic link in {Join(resolvedDir)}, a sticky world-writable directory " +
                "where any local user can plant links; refusing to follow it: give the path of the file or device itself",
                Libc.ELOOP);
    }

    private static string ReadLink(int linkFd, string absolutePath, string link)
    {
        const int Max = 4096; // PATH_MAX
        byte* buffer = stackalloc byte[Max];
        nint n = Libc.readlinkat(linkFd, "", buffer, Max);
        if (n < 0) throw Failure(absolutePath, $"readlink {link}", Marshal.GetLastPInvokeError());
        if (n == 0 || n >= Max) throw new BackingStoreException($"{absolutePath}: symbolic link {link} has an unusable target", Libc.ELOOP);
        return Encoding.UTF8.GetString(buffer, (int)n);
    }

    private static void Push(Stack<string> pending, string path)
    {
        // Enumerable.Reverse by name: on net9.0's libraries C# 14 binds array.Reverse() to the
        // in-place span overload.
        foreach (var p in Enumerable.Reverse(path.Split('/', StringSplitOptions.RemoveEmptyEntries)))
            pending.Push(p);
    }

    private static string Join(List<string> parts, string? last = null)
    {
        var all = last is null ? parts : parts.Append(last);
        return "/" + string.Join('/', all);
    }

    private static int OpenRoot()
    {
        int fd = Libc.open("/", Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw Failure("/", "open", Marshal.GetLastPInvokeError());
        return fd;
    }

    private static BackingStoreException Failure(string path, string call, int errno) =>
        new($"{path}: {call}: {Libc.ErrorMessage(errno)}", errno);

    /// <summary>
    /// Creates the missing file: 0600 (it holds a whole disk, database files included, and must
    /// not be readable by other local users), O_EXCL (never truncates or follows anything that
    /// appeared meanwhile), sized sparse with ftruncate, or allocated with fallocate. Returns the
    /// read-write descriptor. EEXIST when something is there now.
    /// </summary>
    private int CreateFile(long sizeBytes, bool preallocate)
    {
        int fd = Libc.openat(DirFd, _name!, Libc.O_RDWR | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, Mode0600);
        if (fd < 0) throw Failure(Path, "create", Marshal.GetLastPInvokeError());
        int rc = preallocate ? Libc.fallocate(fd, 0, 0, sizeBytes) : Libc.ftruncate(fd, sizeBytes);
        if (rc < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            Libc.close(fd);
            try { File.Delete(ResolvedPath); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw new BackingStoreException(
                $"cannot {(preallocate ? "preallocate" : "size")} {sizeBytes} bytes for {Path}: {Libc.ErrorMessage(errno)}", errno);
        }
        StatBuffer st;
        Libc.fstat(fd, &st);
        Key = BackingObjectKey.Of(st);
        return fd;
    }

    /// <summary>
    /// The one way a backing file is created, by the daemon (<c>size=</c>) and by
    /// <c>tsvctl volume create</c> alike: see <see cref="CreateFile(long, bool)"/>. Throws
    /// <see cref="BackingStoreException"/> with EEXIST when the path exists.
    /// </summary>
    public static void CreateFile(string absolutePath, long sizeBytes, bool preallocate = false)
    {
        using var p = Resolve(absolutePath);
        if (p.Exists)
            throw new BackingStoreException($"{absolutePath} already exists", Libc.EEXIST);
        Libc.close(p.CreateFile(sizeBytes, preallocate));
    }

    private int DirFd
    {
        get
        {
            int fd = _dirFd;
            ObjectDisposedException.ThrowIf(fd < 0, this);
            return fd;
        }
    }

    /// <summary>
    /// Opens the store for I/O. A missing file is created when <see cref="BackingStoreOptions.CreateSizeBytes"/>
    /// is given. A block device is opened O_EXCL: the kernel then refuses it while it is mounted,
    /// or held by device-mapper, md or another exclusive opener, so a mounted LV or the root
    /// disk cannot be served to initiators by mistake. Before that, <see cref="BlockDeviceUsage"/>
    /// looks for a mount, a holder or the root disk, so that the refusal says which.
    /// </summary>
    public IBackingStore Open(BackingStoreOptions? options = null)
    {
        options ??= BackingStoreOptions.Default;
        int fd = -1;
        bool created = false;
        if (Key is null)
        {
            if (options.CreateSizeBytes is not { } size || size <= 0)
                throw new FileNotFoundException($"{Path} does not exist and no size to create it was given", Path);
            try
            {
                fd = CreateFile(size, options.Preallocate);
                created = true;
            }
            catch (BackingStoreException e) when (e.Errno == Libc.EEXIST)
            {
                // Another path of the same volume (or another creator) was first: open what is
                // there now, still without following a link.
                int probe = Libc.openat(DirFd, _name!, Libc.O_PATH | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
                if (probe < 0) throw Failure(Path, "open", Marshal.GetLastPInvokeError());
                StatBuffer pst;
                int r = Libc.fstat(probe, &pst);
                Libc.close(probe);
                if (r < 0 || pst.IsSymbolicLink)
                    throw new BackingStoreException($"{Path} appeared as a symbolic link while it was being created; refusing to follow it", Libc.ELOOP);
                Key = BackingObjectKey.Of(pst);
            }
        }

        var key = Key!.Value;
        if (fd < 0)
        {
            int flags = Libc.O_RDWR | Libc.O_NOFOLLOW | Libc.O_CLOEXEC;
            if (key.IsBlockDevice)
            {
                if (options.DeviceUsage.WhyRefused(key.Major, key.Minor) is { } why)
                    throw new BackingStoreException($"{Path} is in use: {why}; refusing to serve it", Libc.EBUSY);
                flags |= Libc.O_EXCL | (options.DirectIo ? Libc.O_DIRECT : 0);
            }
            fd = Libc.openat(DirFd, _name!, flags, 0);
            if (fd < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == Libc.EBUSY && key.IsBlockDevice)
                    throw new BackingStoreException(
                        $"{Path} is in use (mounted, or part of a device-mapper/md device, or opened exclusively by another program); refusing to serve it", errno);
                if (errno == Libc.ELOOP)
                    throw new BackingStoreException($"{Path} was replaced by a symbolic link while it was being opened; refusing to follow it", errno);
                throw Failure(Path, "open", errno);
            }
        }
        try
        {
            StatBuffer st;
            if (Libc.fstat(fd, &st) < 0) throw Failure(Path, "fstat", Marshal.GetLastPInvokeError());
            if (BackingObjectKey.Of(st) != key)
                throw new BackingStoreException($"{Path} was replaced by another file while it was being opened; try again", 16);
            if (st.IsBlockDevice) return BlockDeviceStore.FromDescriptor(fd, st, options);
            if (st.IsRegularFile) return SparseFileStore.FromDescriptor(fd, st, created && options.Preallocate);
            throw new BackingStoreException($"{Path} is neither a regular file nor a block device", 22);
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _dirFd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}
