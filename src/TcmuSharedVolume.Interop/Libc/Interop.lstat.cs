using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class Libc
{
    /// <summary>lstat(2) into a raw buffer (<see cref="StatBuffer"/>); a symbolic link is not followed.
    /// The symbol exists in glibc since 2.33, like fstat.</summary>
    [LibraryImport(Library, EntryPoint = "lstat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int lstat(string path, StatBuffer* buffer);
}
