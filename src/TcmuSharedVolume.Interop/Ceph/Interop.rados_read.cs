using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Returns the number of bytes read, or a negative errno (-ENOENT: no such object).</summary>
    [LibraryImport(Library, EntryPoint = "rados_read", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_read(nint ioctx, string oid, byte* buffer, nuint length, ulong offset);
}
