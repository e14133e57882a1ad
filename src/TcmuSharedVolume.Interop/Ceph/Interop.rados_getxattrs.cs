using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>Starts an iteration over every xattr of an object (<see cref="rados_getxattrs_next"/>,
    /// then <see cref="rados_getxattrs_end"/>); 0 or a negative errno.</summary>
    [LibraryImport(Library, EntryPoint = "rados_getxattrs", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_getxattrs(nint ioctx, string oid, nint* iterator);
}
