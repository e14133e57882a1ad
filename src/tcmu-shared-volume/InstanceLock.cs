using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using TcmuSharedVolume.Interop;

namespace TcmuSharedVolume.Daemon;

/// <summary>
/// An exclusive lock on a file, held for the life of the process: only one TCMU daemon may read
/// the rings and answer netlink (two readers of one ring, or two reservation engines for one
/// volume, destroy both the data and the fencing). It is an open file description lock
/// (F_OFD_SETLK, whole file) rather than flock(2): tcmu-runner guards /run/tcmu.lock with a
/// classic fcntl(F_SETLK) record lock, which flock does not see but an OFD lock conflicts with;
/// and an OFD lock belongs to this open file, so a second acquisition in the same process fails
/// as a second process would. The kernel drops it when the process dies, however it dies.
/// </summary>
public sealed class InstanceLock : IDisposable
{
    private int _fd;

    private InstanceLock(string path, int fd)
    {
        Path = path;
        _fd = fd;
    }

    public string Path { get; }

    /// <summary>
    /// Creates <paramref name="path"/> if needed (0600) and locks it without waiting. On failure
    /// <paramref name="error"/> says why, naming the holder's pid when it can be found;
    /// <paramref name="held"/> tells a lock held by someone else from a file that cannot be opened.
    /// </summary>
    public static unsafe InstanceLock? TryAcquire(string path, out bool held, out string? error)
    {
        held = false;
        int fd = Libc.open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0x180 /* 0600 */);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            error = $"cannot open {path}: {Libc.ErrorMessage(errno)} (errno {errno})";
            return null;
        }
        var lk = new Flock { Type = Libc.F_WRLCK, Whence = 0 /* SEEK_SET */, Start = 0, Length = 0, Pid = 0 };
        if (Libc.fcntl(fd, Libc.F_OFD_SETLK, &lk) < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno is Libc.EAGAIN or 13 /* EACCES */)
            {
                held = true;
                error = $"{path} is locked by {Holder(fd, path)}";
            }
            else
            {
                error = $"cannot lock {path}: {Libc.ErrorMessage(errno)} (errno {errno})";
            }
            Libc.close(fd);
            return null;
        }
        // The pid in the file is for people (and the message above); the lock is what counts.
        if (Libc.ftruncate(fd, 0) == 0)
        {
            var pid = Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(CultureInfo.InvariantCulture) + "\n");
            fixed (byte* p = pid) Libc.pwrite(fd, p, pid.Length, 0);
        }
        error = null;
        return new InstanceLock(path, fd);
    }

    /// <summary>"process N" from F_OFD_GETLK (a classic record lock reports its owner) or from the
    /// pid written in the file; else "another process".</summary>
    private static unsafe string Holder(int fd, string path)
    {
        var probe = new Flock { Type = Libc.F_WRLCK, Whence = 0, Start = 0, Length = 0, Pid = 0 };
        if (Libc.fcntl(fd, Libc.F_OFD_GETLK, &probe) == 0 && probe.Type != Libc.F_UNLCK && probe.Pid > 0)
            return $"process {probe.Pid}";
        try
        {
            var text = File.ReadAllText(path).Trim();
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) && pid > 0)
                return $"process {pid}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return "another process";
    }

    public void Dispose()
    {
        if (_fd < 0) return;
        Libc.close(_fd);
        _fd = -1;
    }
}
